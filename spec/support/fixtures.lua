-- Helpers shared by the specs that talk to the sandbox (spec/support/sandbox.lua,
-- doc/sandbox.md): its request log, workflow ids of their own, clients of it.

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

-- A test's own `options` win over the spec's `defaults`, which win over the
-- sandbox's address and token, so that a test states only what it varies.
function M.sandbox_client(sb, defaults, options)
  -- Required here, not on top, so that specs of the pure Lua modules can use the
  -- other helpers without the C core.
  local workflows = require "workflows"
  local all = { base_url = sb.url, token = sb.token }
  for key, value in pairs(defaults) do all[key] = value end
  for key, value in pairs(options or {}) do all[key] = value end
  return workflows.new(all)
end

return M
