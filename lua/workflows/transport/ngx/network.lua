-- The nginx transport's part of proxies and client certificates: where an attempt
-- connects (the origin, or the proxy workflows.proxy chose for the client), the pool
-- its connection belongs to, the CONNECT tunnel for an https target behind a proxy,
-- and the client certificate, parsed once per worker and file through ngx.ssl.
--
-- A pooled connection carries what it was made with: the proxy and its credentials,
-- the client certificate and the trust settings. Each of them is part of the pool's
-- name, so that a connection never serves another identity, proxy or CA choice; the
-- secrets go in only as a digest.

local proxy = require "workflows.proxy"
local identity = require "workflows.identity"
local outcomes = require "workflows.transport.ngx.outcomes"

local pcall, tonumber, tostring, require, ipairs = pcall, tonumber, tostring, require, ipairs
local format, match, sub = string.format, string.match, string.sub
local concat = table.concat
local open = io.open

local failure, ms, timed_out = outcomes.failure, outcomes.ms, outcomes.timed_out

local M = {}

-- The lines of a proxy's answer to CONNECT read at most: past them it is no proxy.
local LONGEST_CONNECT_HEAD = 100

local function digest(ngx, text)
  return sub(ngx.md5(text), 1, 16)
end

-- Sets on `target` (exchange's parsed URL) where to connect and which pool to use:
-- connect_address, connect_port, proxy (the parsed proxy, or nil), pool, and
-- request_target (what goes on the request line).
function M.plan(request, target, ngx)
  local pool = { target.pool }
  target.connect_address, target.connect_port = target.address, target.port
  target.request_target = target.path
  local via = request.proxy and proxy.parse(request.proxy)
  if via then
    via.user, via.password = request.proxy_user, request.proxy_password
    target.proxy = via
    target.connect_address = via.host == "localhost" and "127.0.0.1"
      or match(via.host, "^%[(.*)%]$") or via.host
    target.connect_port = via.port
    pool[#pool + 1] = "via " .. via.authority
    if via.user then
      pool[#pool + 1] = "as " .. digest(ngx, via.user .. ":" .. (via.password or ""))
      target.proxy_authorization = "Basic " .. ngx.encode_base64(via.user .. ":"
        .. (via.password or ""))
    end
    if target.scheme == "http" then
      target.request_target = "http://" .. target.host_header .. target.path
    end
  end
  if target.scheme == "https" then
    if request.client_cert then
      pool[#pool + 1] = "cert " .. request.client_cert .. " " .. (request.client_key or "")
        .. " " .. digest(ngx, request.client_key_password or "")
    end
    pool[#pool + 1] = "ca " .. (request.ca_file or "") .. " " .. (request.ca_path or "")
  end
  target.pool = concat(pool, "|")
end

-- The one line a request through a plain-http proxy adds, or nil.
function M.authorization_line(target)
  if target.proxy and target.scheme == "http" and target.proxy_authorization then
    return "Proxy-Authorization: " .. target.proxy_authorization
  end
  return nil
end

-- ---------------------------------------------------------- client certificates

-- Parsed certificates and keys of this worker: files and password -> { cert, key }.
local parsed = {}

local function contents(path)
  local file = open(path, "rb")
  if not file then return nil end
  local text = file:read("*a")
  file:close()
  return text
end

-- OpenSSL's own reading of an encrypted PEM key, given its password (ngx.ssl reads only
-- clear keys, and would ask a terminal for the password): the key in clear PEM, held in
-- memory only.
local function decrypted_pem(pem, password)
  local ffi = require "ffi"
  for _, declaration in ipairs {
    "void *BIO_new_mem_buf(const void *buf, int len);",
    "const void *BIO_s_mem(void);",
    "void *BIO_new(const void *type);",
    "int BIO_free(void *bio);",
    "long BIO_ctrl(void *bio, int cmd, long larg, void *parg);",
    "void *PEM_read_bio_PrivateKey(void *bio, void **x, void *cb, void *u);",
    "int PEM_write_bio_PrivateKey(void *bio, void *key, const void *enc, unsigned char *kstr,"
      .. " int klen, void *cb, void *u);",
    "void EVP_PKEY_free(void *key);",
    "void ERR_clear_error(void);",
  } do
    pcall(ffi.cdef, declaration)   -- another library may have declared it already
  end
  local C = ffi.C
  local input = C.BIO_new_mem_buf(pem, #pem)
  if input == nil then return nil end
  local phrase = ffi.new("char[?]", #password + 1, password)
  local key = C.PEM_read_bio_PrivateKey(input, nil, nil, phrase)
  C.BIO_free(input)
  ffi.fill(phrase, #password + 1)
  if key == nil then
    C.ERR_clear_error()
    return nil
  end
  local output = C.BIO_new(C.BIO_s_mem())
  local text
  if output ~= nil and C.PEM_write_bio_PrivateKey(output, key, nil, nil, 0, nil, nil) == 1 then
    local data = ffi.new("char *[1]")
    local length = C.BIO_ctrl(output, 3, 0, data)  -- BIO_get_mem_data
    text = ffi.string(data[0], length)
  end
  if output ~= nil then C.BIO_free(output) end
  C.EVP_PKEY_free(key)
  return text
end

local function loaded(request, ngx)
  local name = request.client_cert .. "\0" .. (request.client_key or "") .. "\0"
    .. digest(ngx, request.client_key_password or "")
  local pair = parsed[name]
  if pair then return pair end
  local ssl = require "ngx.ssl"
  local cert_pem = contents(request.client_cert)
  local key_pem = contents(request.client_key or request.client_cert)
  if not cert_pem or not key_pem then return nil end
  if request.client_key_password then
    key_pem = decrypted_pem(key_pem, request.client_key_password)
  elseif match(key_pem, "ENCRYPTED") then
    key_pem = nil  -- never handed to ngx.ssl, which would ask a terminal for a password
  end
  local cert = ssl.parse_pem_cert(cert_pem)
  local key = key_pem and ssl.parse_pem_priv_key(key_pem)
  if not cert or not key then return nil end
  pair = { cert = cert, key = key }
  parsed[name] = pair
  return pair
end

local function certificate_failure(request)
  return failure("network", identity.unusable { cert = request.client_cert,
    key = request.client_key or request.client_cert }, { tls = true, client_cert_problem = true })
end

-- ---------------------------------------------------------- on a fresh connection

-- The proxy's answer to CONNECT: nil when it opened the tunnel, else a failure.
local function tunnel(sock, target, deadline, started, now)
  local lines = { "CONNECT " .. target.host_header_with_port .. " HTTP/1.1",
    "Host: " .. target.host_header_with_port }
  if target.proxy_authorization then
    lines[#lines + 1] = "Proxy-Authorization: " .. target.proxy_authorization
  end
  local sent, send_err = sock:send(concat(lines, "\r\n") .. "\r\n\r\n")
  if not sent then
    return failure("network", "could not reach proxy " .. target.proxy.authority .. ": Send failure: "
      .. tostring(send_err))
  end
  local status
  for i = 1, LONGEST_CONNECT_HEAD do
    local left = deadline - now()
    if left <= 0 then return timed_out(started, 0) end
    sock:settimeout(ms(left))
    local line, err = sock:receive("*l")
    if not line then
      if err == "timeout" then return timed_out(started, 0) end
      return failure("network", "could not reach proxy " .. target.proxy.authority
        .. ": the proxy closed the connection during CONNECT (" .. tostring(err) .. ")")
    end
    if i == 1 then
      status = tonumber(match(line, "^HTTP/1%.%d (%d%d%d)"))
      if not status then
        return failure("network", "proxy " .. target.proxy.authority
          .. " answered CONNECT with no HTTP status line")
      end
    elseif line == "" then
      if status >= 200 and status < 300 then return nil end
      return failure("network", format("proxy refused CONNECT to %s: %d", target.host_header_with_port,
        status), { proxy_status = status })
    end
  end
  return failure("network", "proxy " .. target.proxy.authority .. " sent too long an answer to CONNECT")
end

-- What a fresh connection needs before TLS: the tunnel through the proxy for an https
-- target, and the client certificate. Returns nil, or the failure.
function M.prepare(sock, request, target, ngx, deadline, started, now)
  if target.scheme ~= "https" then return nil end
  if target.proxy then
    target.host_header_with_port = target.host .. ":" .. target.port
    local refused = tunnel(sock, target, deadline, started, now)
    if refused then return refused end
  end
  if request.client_cert then
    local ok, pair = pcall(loaded, request, ngx)
    if not ok or not pair then return certificate_failure(request) end
    local set, problem = sock:setclientcert(pair.cert, pair.key)
    if not set then
      return failure("network", "the nginx transport could not present the client certificate: "
        .. tostring(problem), { tls = true })
    end
  end
  return nil
end

return M
