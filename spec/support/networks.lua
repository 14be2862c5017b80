-- What the specs of proxies and client certificates share (spec/84-*_spec.lua): one
-- call made on each libcurl transport (blocking, a task on a luv loop, a coroutine of
-- a cqueues controller), and the sandboxes a describe block needs.
--
--   local networks = require "spec.support.networks"
--   for _, name in ipairs(networks.TRANSPORTS) do ... end   -- those this Lua has
--   networks.call(name, options, function(client) return client:list_runs(...) end)
--     -> what the body returned, from a client made with `options` (max_retries 0
--        and timeout 5 unless given) on that transport, closed afterwards
--   networks.through(proxy_sb, seq)  -> what the sandbox proxy relayed since seq
local workflows = require "workflows"
local luv_loop = require "spec.support.luv_loop"
local controller = require "spec.support.cqueues_loop"

local unpack = table.unpack or unpack  -- luacheck: ignore (unpack: Lua 5.1, LuaJIT)

local M = {}

M.WAIT = 20

M.TRANSPORTS = { "curl" }
if luv_loop.uv then M.TRANSPORTS[#M.TRANSPORTS + 1] = "uv" end
if controller.cqueues then M.TRANSPORTS[#M.TRANSPORTS + 1] = "cqueues" end

local function pack(...) return { n = select("#", ...), ... } end

function M.call(transport, options, body)
  local given = { max_retries = 0, timeout = 5 }
  for key, value in pairs(options) do given[key] = value end
  if transport == "uv" then given.loop = luv_loop.uv end
  local client = workflows.new(given)
  local result
  if transport == "curl" then
    result = pack(body(client))
  elseif transport == "uv" then
    local ended
    client:spawn(function() result = pack(body(client)) end,
      function(ok, err) ended = { ok = ok, err = err } end)
    luv_loop.run_until(function() return ended ~= nil end, M.WAIT)
    if not ended.ok then client:close() error(ended.err, 0) end
  else
    local ended = controller.run({ function() return body(client) end }, M.WAIT)[1]
    if not ended.ok then client:close() error(ended.err, 0) end
    result = ended
  end
  client:close()
  if transport == "uv" then luv_loop.drain() end
  return unpack(result, 1, result.n)
end

-- What went through the sandbox proxy `proxy_sb` since `seq`: "METHOD target status".
function M.through(proxy_sb, seq)
  local lines = {}
  for _, entry in ipairs(proxy_sb:log(seq)) do
    lines[#lines + 1] = entry.method .. " " .. entry.target .. " " .. entry.status
  end
  return lines
end

-- One page of two runs: the page's item count, or nil and the error.
function M.list(client)
  local page, err = client:list_runs("wf_demo", { limit = 2 })
  return page and #page.items, err
end

return M
