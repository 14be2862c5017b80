-- An HTTP/1.1 response parser that is pushed bytes as they come, in chunks of any
-- size: the status line, the headers, and a body framed by Content-Length, by
-- chunked transfer coding, or by the end of the connection. The cosocket transport
-- (workflows.transport.ngx) feeds it what the socket gives; it never reads,
-- waits or raises on bad input. Plain Lua 5.1 to 5.4 and LuaJIT.
--
--   local parser = http1.response_parser(max_body_bytes)
--   parser:feed(bytes) -> true (the response is complete), false (more wanted),
--                         or nil, message (malformed; the same again afterwards)
--   parser:finish()    -> at the end of the stream: true when that completes the
--                         response, else nil, message
--   parser.status, parser.headers (lower-case name -> value), parser:body(),
--   parser.keep_alive (the connection may carry another request), parser.too_large,
--   parser.received (bytes fed so far)

local setmetatable, tonumber, type = setmetatable, tonumber, type
local find, sub, lower, format, gsub, match = string.find, string.sub, string.lower,
  string.format, string.gsub, string.match
local concat = table.concat

local M = {}

-- The status line and the headers together, and one chunk-size or trailer line:
-- past these a peer is not speaking HTTP to us, and the buffer must not grow.
M.LONGEST_HEAD = 64 * 1024
M.LONGEST_CHUNK_LINE = 1024

local Parser = {}
Parser.__index = Parser

function M.response_parser(max_body_bytes)
  return setmetatable({
    state = "status",      -- status, headers, length, close, size, data, data_end, trailers, done
    pending = "",          -- bytes not yet consumed (a line in progress)
    head_bytes = 0,        -- bytes of the current head, for LONGEST_HEAD
    headers = {},
    parts = {},            -- body pieces, joined once by body()
    body_bytes = 0,
    remaining = nil,       -- bytes left of the Content-Length or of the current chunk
    max_body_bytes = max_body_bytes,
    too_large = false,
    keep_alive = false,
    received = 0,
    failure = nil,
  }, Parser)
end

-- A peer's bytes as they may appear in a message: quoted, cut short, with control
-- and non-ASCII bytes escaped.
local function quoted(text)
  local cut = #text > 40
  if cut then text = sub(text, 1, 40) end
  text = gsub(text, '[%c"\\\128-\255]', function(c) return format("\\x%02X", c:byte()) end)
  return '"' .. text .. (cut and '..."' or '"')
end

local function fail(self, message)
  self.failure = message
  self.state = "failed"
  self.keep_alive = false
  return nil, message
end

local function complete(self)
  self.state = "done"
  return true
end

-- Keeps `piece` of the body, or stops at the cap: the rest is never read.
local function keep(self, piece)
  local size = self.body_bytes + #piece
  if self.max_body_bytes and size > self.max_body_bytes then
    self.too_large = true
    self.keep_alive = false
    return false
  end
  self.body_bytes = size
  self.parts[#self.parts + 1] = piece
  return true
end

local function has_token(value, token)
  for item in (lower(value) .. ","):gmatch("%s*([^,]-)%s*,") do
    if item == token then return true end
  end
  return false
end

-- The last of a comma-separated list of transfer codings, lower-cased.
local function last_coding(value)
  local last
  for item in (lower(value) .. ","):gmatch("%s*([^,;]-)%s*[;,]") do
    if item ~= "" then last = item end
  end
  return last
end

local function content_length(value)
  local length
  for item in (value .. ","):gmatch("%s*([^,]-)%s*,") do
    if not find(item, "^%d+$") or #item > 15 then return nil end
    local n = tonumber(item)
    if length and n ~= length then return nil end
    length = n
  end
  return length
end

-- A body with no length and no chunks: it ends when the server closes, so the
-- connection cannot be kept.
local function read_until_close(self)
  self.keep_alive = false
  self.state = "close"
  return false
end

-- Decides how the body is framed once the headers are in.
local function begin_body(self)
  local headers, status = self.headers, self.status
  local connection = headers["connection"]
  if self.version == "1.1" then
    self.keep_alive = not (connection and has_token(connection, "close"))
  else
    self.keep_alive = connection ~= nil and has_token(connection, "keep-alive")
  end
  if status == 204 or status == 304 then return complete(self) end
  local coding = headers["transfer-encoding"]
  if coding then
    if last_coding(coding) == "chunked" then
      self.state = "size"
      return false
    end
    return read_until_close(self)
  end
  local length = headers["content-length"]
  if length then
    local n = content_length(length)
    if not n then return fail(self, "invalid Content-Length " .. quoted(length)) end
    if self.max_body_bytes and n > self.max_body_bytes then
      self.too_large = true
      self.keep_alive = false
      return complete(self)
    end
    if n == 0 then return complete(self) end
    self.remaining = n
    self.state = "length"
    return false
  end
  return read_until_close(self)
end

local function status_line(self, line)
  local major, minor, code, rest = match(line, "^HTTP/(%d)%.(%d) (%d%d%d)(.*)$")
  if not major or (rest ~= "" and sub(rest, 1, 1) ~= " ") then
    return fail(self, "invalid status line " .. quoted(line))
  end
  local status = tonumber(code)
  if major ~= "1" or status < 100 then
    return fail(self, "invalid status line " .. quoted(line))
  end
  if status == 101 then return fail(self, "unexpected 101 Switching Protocols") end
  self.version, self.status, self.reason = major .. "." .. minor, status, sub(rest, 2)
  self.headers = {}
  self.state = "headers"
  return false
end

local function header_line(self, line)
  if line == "" then
    if self.status < 200 then   -- an interim answer (100 Continue): another head follows
      self.state, self.head_bytes = "status", 0
      return false
    end
    return begin_body(self)
  end
  local name, value = match(line, "^([!#$%%&'*+%-.^_`|~%w]+):[ \t]*(.-)[ \t]*$")
  if not name then return fail(self, "invalid header line " .. quoted(line)) end
  name = lower(name)
  local before = self.headers[name]
  if before then value = before .. ", " .. value end
  self.headers[name] = value
  return false
end

local function chunk_size_line(self, line)
  local digits = match(line, "^(%x+)[ \t]*$") or match(line, "^(%x+)[ \t]*;")
  if not digits or #digits > 12 then return fail(self, "invalid chunk size " .. quoted(line)) end
  local size = tonumber(digits, 16)
  if size == 0 then
    self.state = "trailers"
    return false
  end
  self.remaining = size
  self.state = "data"
  return false
end

-- The next line of `pending` from `at`, without its CRLF (or bare LF), and the
-- position after it; nil when the line is not complete yet.
local function next_line(self, at)
  local pending = self.pending
  local lf = find(pending, "\n", at, true)
  if not lf then return nil end
  local last = lf - 1
  if sub(pending, last, last) == "\r" then last = last - 1 end
  return sub(pending, at, last), lf + 1
end

-- Consumes what it can of `pending` from position `at`; returns true, false or
-- nil, message as feed does, and the position reached.
local function run(self, at)
  local pending = self.pending
  while true do
    local state = self.state
    if state == "done" then
      if at <= #pending then self.keep_alive = false end  -- bytes nobody asked for
      return true, #pending + 1
    elseif state == "status" or state == "headers" or state == "size" or state == "trailers" then
      local line, after = next_line(self, at)
      local limit = (state == "status" or state == "headers") and M.LONGEST_HEAD
        or M.LONGEST_CHUNK_LINE
      if not line then
        local waiting = #pending - at + 1
        if state == "status" or state == "headers" then waiting = waiting + self.head_bytes end
        if waiting > limit then
          if state == "size" or state == "trailers" then
            return fail(self, format("chunk line longer than %d bytes", limit))
          end
          return fail(self, format("response head larger than %d bytes", limit))
        end
        return false, at
      end
      if state == "status" or state == "headers" then
        self.head_bytes = self.head_bytes + (after - at)
        if self.head_bytes > limit then
          return fail(self, format("response head larger than %d bytes", limit))
        end
      end
      at = after
      local ok, message
      if state == "status" then
        if line == "" and self.head_bytes <= 2 then
          -- a stray blank line before the status line is tolerated
          self.head_bytes = 0
          ok = false
        else
          ok, message = status_line(self, line)
        end
      elseif state == "headers" then
        ok, message = header_line(self, line)
      elseif state == "size" then
        ok, message = chunk_size_line(self, line)
      elseif line == "" then
        ok = complete(self)  -- the blank line after the trailers
      else
        ok = false           -- a trailer: nothing here reads them
      end
      if ok == nil then return nil, message end
    elseif state == "length" or state == "data" then
      local available = #pending - at + 1
      if available == 0 then return false, at end
      local take = self.remaining < available and self.remaining or available
      if not keep(self, sub(pending, at, at + take - 1)) then return complete(self), at + take end
      at = at + take
      self.remaining = self.remaining - take
      if self.remaining == 0 then
        if state == "length" then
          self.state = "done"
        else
          self.state = "data_end"
        end
      end
    elseif state == "data_end" then
      local available = #pending - at + 1
      if available == 0 then return false, at end
      local first = sub(pending, at, at)
      if first == "\n" then
        at = at + 1
        self.state = "size"
      elseif first ~= "\r" then
        return fail(self, "missing CRLF after chunk data")
      elseif available < 2 then
        return false, at
      elseif sub(pending, at + 1, at + 1) ~= "\n" then
        return fail(self, "missing CRLF after chunk data")
      else
        at = at + 2
        self.state = "size"
      end
    elseif state == "close" then
      if at <= #pending and not keep(self, sub(pending, at)) then
        return complete(self), #pending + 1
      end
      return false, #pending + 1
    else
      return nil, self.failure
    end
  end
end

function Parser:feed(bytes)
  if self.failure then return nil, self.failure end
  if type(bytes) ~= "string" then bytes = "" end
  self.received = self.received + #bytes
  if self.state == "done" then
    if bytes ~= "" then self.keep_alive = false end
    return true
  end
  if self.pending == "" then self.pending = bytes else self.pending = self.pending .. bytes end
  local result, at = run(self, 1)
  if result == nil then
    self.pending = ""
    return nil, at
  end
  if at > #self.pending then self.pending = "" else self.pending = sub(self.pending, at) end
  return result
end

-- The end of the stream: completes a body framed by the close, or says what is
-- missing, in the words libcurl uses for the same cases.
function Parser:finish()
  if self.failure then return nil, self.failure end
  local state = self.state
  if state == "done" then return true end
  if state == "close" then return complete(self) end
  local message
  if self.received == 0 then
    message = "Empty reply from server"
  elseif state == "status" or state == "headers" then
    message = "connection closed before the end of the response headers"
  elseif state == "length" then
    message = format("transfer closed with %d bytes remaining to read", self.remaining)
  else
    message = "transfer closed with outstanding read data remaining"
  end
  return fail(self, message)
end

function Parser:body()
  local parts = self.parts
  if #parts > 1 then
    local whole = concat(parts)
    self.parts = { whole }
    return whole
  end
  return parts[1] or ""
end

return M
