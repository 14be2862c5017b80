--[[ Transports: the one place where the layer waits.

A transport carries HTTP attempts for one client and does every wait of the layer:
for an answer, for a backoff, for a Retry-After. The request jobs, the pager, the
options, the errors and the retry policy only plan; they never block, sleep or
yield, and they do not know which transport runs them. doc/transport.md describes
the interface; in short, a transport has

  transport:start(request) -> attempt   begins one attempt at once and never waits;
                                        `request` is the core's request table
                                        (doc/core.md)
  attempt:done() -> boolean             true once the attempt has an outcome
  attempt:result() -> outcome           the core's outcome table (doc/core.md)
  attempt:release()                     frees it, stopping it when still running;
                                        idempotent
  transport:wait(seconds)               returns once an attempt has finished, or
                                        after `seconds`, whichever is first (or
                                        earlier: callers check again)
  transport:flush()                     puts attempts started since the last wait
                                        on the wire now, without waiting
  transport:close()                     releases everything it holds

This module picks the transport of the running code (`M.current`) and holds the
only wait loop (`M.await`). ]]

local request = require "workflows.request"
local errors = require "workflows.errors"
local core = require "workflows.core"

local error, rawget = error, rawget

local now = core.now

local M = {}

-- Longest single wait: a wait ends as soon as something happens, so this only
-- bounds how long one can be mistaken for.
local LONGEST_WAIT = 1

-- Picks, in order: the transport of the host (cosockets inside nginx), the loop's
-- transport inside one of the client's tasks, the blocking libcurl transport.
-- Each kind is made once per client, on first use.
function M.current(ctx)
  -- only a walk begun before client:close() can get here after it
  if ctx.closed then error(errors.invalid_argument("the client is closed"), 0) end
  -- inside nginx, cosockets (or a refusal where they do not work); never libcurl
  -- unless asked for by name
  local choice = ctx.config and ctx.config.transport
  if choice == "ngx" or (choice ~= "curl" and rawget(_G, "ngx") ~= nil) then
    local cosockets = require "workflows.transport.ngx"
    if choice == "ngx" or cosockets.inside_nginx() then return cosockets.for_request(ctx) end
  end
  if ctx.loop and ctx.tasks and ctx.tasks.running() then
    local loop_transport = ctx.loop_transport
    if not loop_transport then
      loop_transport = require("workflows.transport.uv").new(ctx)
      ctx.loop_transport = loop_transport
    end
    return loop_transport
  end
  local blocking = ctx.blocking_transport
  if not blocking then
    blocking = require("workflows.transport.curl").new(ctx)
    ctx.blocking_transport = blocking
  end
  return blocking
end

-- Returns once `job` has finished, moving every job of `jobs` (which holds `job`)
-- along meanwhile, so that one job's backoff never stalls the others. Returns
-- the seconds spent waiting on the transport.
function M.await(job, jobs)
  local transport = job.transport
  local waited = 0
  while true do
    local t = now()
    local due = request.advance(jobs, t)
    if job.finished then return waited end
    local wait = LONGEST_WAIT
    if due and due - t < wait then wait = due - t end
    if wait < 0 then wait = 0 end
    local before = now()
    transport:wait(wait)
    waited = waited + (now() - before)
  end
end

-- Sends what was started since the last wait, where the transport needs telling.
function M.flush(job)
  if job.transport then job.transport:flush() end
end

return M
