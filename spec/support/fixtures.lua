-- Helpers shared by the specs that talk to the sandbox (spec/support/sandbox.lua,
-- doc/sandbox.md): one sandbox per describe block and clients of it, its request
-- log, workflow ids of their own.

local M = {}

-- An error object's metatable only formats it; the contract is about its fields,
-- so specs compare a plain copy of those.
function M.fields(err)
  local copy = {}
  for key, value in pairs(err) do copy[key] = value end
  return copy
end

-- A request cancelled by an earlier test may still reach the server and be logged
-- later, so a test counts only the entries after `seq` for its own workflow `id`.
function M.requests_for(sb, id, seq)
  local entries = {}
  for _, entry in ipairs(sb:log(seq)) do
    if entry.workflow_id == id then entries[#entries + 1] = entry end
  end
  return entries
end

-- Sorted, because pages requested ahead reach the server in no fixed order.
function M.offsets_of(entries)
  local offsets = {}
  for i, entry in ipairs(entries) do offsets[i] = tonumber(entry.query.offset) end
  table.sort(offsets)
  return offsets
end

-- The sandbox keeps its counters (`times`, `live`) per workflow id, and the log is
-- read by id: an `n=` directive that no other test used gives a test both afresh.
-- `tag` keeps the ids of different spec files apart.
function M.suffix_maker(tag)
  local n = 0
  return function()
    n = n + 1
    return ("n=%s-%d-%d"):format(tag, n, os.time())
  end
end

-- Ids "wf_demo;<directives>;n=...": the demo workflow, with the sandbox faults
-- that `directives` name switched on for the one test that asked for them.
function M.demo_id_maker(tag)
  local suffix = M.suffix_maker(tag)
  return function(directives)
    return ("wf_demo;%s;%s"):format(directives, suffix())
  end
end

-- One sandbox for a describe block, and clients of it:
--
--   describe("something", function()
--     local sb = fixtures.sandbox { client = { timeout = 2, max_retries = 1 } }
--     it("...", function()
--       local seq = sb:last_seq()
--       local page, err = sb:new_client { prefetch = 0 }:list_runs("wf_demo")
--       local entries = sb:requests_for("wf_demo", seq)
--     end)
--   end)
--
-- Called inside a describe block (never inside a test), it starts the server before
-- the block's first test and always stops it after its last (lazy_setup and
-- lazy_teardown), on a free port: so every busted process, and every block, has
-- a server of its own. `options` are those of spec/support/sandbox.lua's start (tls,
-- token, latency_ms, seed) plus `client`, the options every client of it gets unless
-- a test says otherwise. Inside the block's tests the value returned stands for the
-- running server: sb.url, sb.token, sb.cert, sb:log(seq), sb:last_seq().
local Fixture = {}

-- A client of the sandbox: a test's own `options` win over the block's `client`
-- defaults, which win over the sandbox's address and token, so that a test states
-- only what it varies.
function Fixture:new_client(options)
  return M.sandbox_client(self, self._client_defaults, options)
end

-- The same for a server started by hand (spec/support/sandbox.lua): `sb`'s address
-- and token, under `defaults`, under `options`.
function M.sandbox_client(sb, defaults, options)
  -- Required here, not on top, so that specs of the pure Lua modules can use the
  -- other helpers without the C core.
  local workflows = require "workflows"
  local all = { base_url = sb.url, token = sb.token }
  for key, value in pairs(defaults or {}) do all[key] = value end
  for key, value in pairs(options or {}) do all[key] = value end
  return workflows.new(all)
end

-- The log entries of the requests for workflow `id` after `seq` (see requests_for).
function Fixture:requests_for(id, seq)
  return M.requests_for(self, id, seq)
end

function M.sandbox(options)
  local busted = require "busted"
  local sandbox = require "spec.support.sandbox"
  local start, defaults = {}, {}
  for key, value in pairs(options or {}) do
    if key == "client" then defaults = value else start[key] = value end
  end
  local running
  local fixture = setmetatable({ _client_defaults = defaults }, {
    __index = function(_, key)
      if Fixture[key] then return Fixture[key] end
      if not running then
        error("the sandbox runs only during the tests of the describe block that asked for it", 2)
      end
      local value = running[key]
      if type(value) == "function" then
        return function(_, ...) return value(running, ...) end
      end
      return value
    end,
  })
  busted.lazy_setup(function() running = sandbox.start(start) end)
  busted.lazy_teardown(function()
    if running then running:stop() end
    running = nil
  end)
  return fixture
end

-- PUC Lua 5.1 cannot yield from a for-loop's iterator; every other Lua can.
M.YIELDS_IN_FOR = not (_VERSION == "Lua 5.1" and not rawget(_G, "jit"))

-- Every value of an iterator, through the explicit loop that runs on every Lua.
function M.drain(iterator)
  local values = {}
  while true do
    local value = iterator()
    if value == nil then break end
    values[#values + 1] = value
  end
  return values
end

-- An error's fields without what differs from attempt to attempt: the request id and
-- libcurl's own timings ("after 95 milliseconds").
function M.comparable(err)
  local copy = M.fields(err)
  copy.requestId = nil
  local function steady(text)
    return (text:gsub(" %(request [%w_]+", " (request *"):gsub("after %d+ m", "after N m"))
  end
  copy.text = steady(tostring(err))
  if copy.message then copy.message = steady(copy.message) end
  return copy
end

-- The sandbox's listing URL for workflow `id`, with `query` ("?limit=3...") if any:
-- what the core's own specs hand session:start.
function M.runs_url(sb, id, query)
  local escape_segment = require("workflows.core").escape_segment
  return sb.url .. "/v1/workflows/" .. escape_segment(id) .. "/runs" .. (query or "")
end

-- A transfer's outcome (transfer:result()) without what may differ between two
-- requests for the same answer: ids, timings, the connection, and a Retry-After date
-- read a moment apart.
function M.comparable_outcome(outcome)
  local copy = {}
  for key, value in pairs(outcome) do copy[key] = value end
  copy.elapsed, copy.reused = nil, nil
  if copy.request_id then copy.request_id = "<id>" end
  if copy.page then
    copy.page = { items = copy.page.items, hasMore = copy.page.hasMore,
      limit = copy.page.limit, offset = copy.page.offset, requestId = "<id>" }
  end
  if copy.retry_after then copy.retry_after = math.floor(copy.retry_after / 5 + 0.5) * 5 end
  return copy
end

return M
