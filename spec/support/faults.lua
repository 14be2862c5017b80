-- What the specs of the sandbox's faults share (spec/70-faults-*_spec.lua): the slack
-- their timings allow, and calls and walks timed, with the requests the sandbox saw.
--
--   local faults = require "spec.support.faults"
--   local sb = fixtures.sandbox { ... }                 -- in a describe block
--   local faulty, list, walk_error = faults.helpers(sb)
--   faulty(directives [, name])  -> "wf_demo;<directives>;n=faultsN", an id no test used
--   list(client, id [, opts])    -> page, err, the requests for id, seconds taken
--   walk_error(client, id [, opts]) -> the error the walk raised, the requests for id,
--                                   seconds taken, runs walked
local core = require "workflows.core"
local assert = require "luassert"

local format = string.format

local M = {}

-- Slack for "ends within timeout plus a small margin": scheduling, the sandbox's
-- threads, and sanitized builds.
M.MARGIN = 0.6
-- libcurl counts its timeouts in whole milliseconds and may end one a little early.
M.EARLY = 0.02

function M.helpers(sb)
  local unique = 0

  -- A workflow id carrying `directives` that no other test uses, so that the
  -- sandbox's per-id counters (times=, live=) start afresh.
  local function faulty(directives, name)
    unique = unique + 1
    return format("%s;%s;n=faults%d", name or "wf_demo", directives, unique)
  end

  -- list_runs(id) timed, with the requests the sandbox saw for it.
  local function list(c, id, opts)
    local seq = sb:last_seq()
    local started = core.now()
    local page, err = c:list_runs(id, opts)
    local elapsed = core.now() - started
    return page, err, sb:requests_for(id, seq), elapsed
  end

  -- The error a walk raises, timed, with the requests the sandbox saw for it.
  local function walk_error(c, id, opts)
    local seq = sb:last_seq()
    local started = core.now()
    local count = 0
    local ok, err = pcall(function()
      for _ in c:runs(id, opts) do count = count + 1 end
    end)
    assert.is_false(ok, "the walk should have failed")
    return err, sb:requests_for(id, seq), core.now() - started, count
  end

  return faulty, list, walk_error
end

return M
