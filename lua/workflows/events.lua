-- Events for metrics and tracing: one table per event, handed to the client's
-- `on_event` hook and to the WORKFLOWS_DEBUG line, its other consumer.
--
-- Emitters build no table unless someone listens: every emission is guarded with
-- `if ctx.on_event then ... end`, and ctx.on_event is nil when neither the hook nor
-- the debug line is on; nor do they load this module, which comes with the first
-- client something listens to. A hook that raises never breaks a call or a walk: the
-- failure is counted (client:event_failures()) and reported once.

local errors = require "workflows.errors"

local pcall, tostring, rawget = pcall, tostring, rawget
local format, floor = string.format, math.floor
local io = io

local M = {}

-- Where a warning goes: nginx's error log inside nginx, Neovim's messages inside
-- Neovim (stderr would garble its screen), stderr elsewhere.
function M.warn(line)
  local ngx, vim = rawget(_G, "ngx"), rawget(_G, "vim")
  if ngx and ngx.log and ngx.WARN then
    ngx.log(ngx.WARN, line)
  elseif vim and vim.schedule and vim.notify then
    vim.schedule(function() vim.notify(line, vim.log.levels.WARN) end)
  else
    io.stderr:write(line, "\n")
  end
end

-- The WORKFLOWS_DEBUG line of a finished attempt.
local function debug_line(ev, secrets)
  if ev.type ~= "attempt" then return end
  local result = ev.kind
  if ev.status and (ev.kind == "ok" or ev.kind == "http") then result = tostring(ev.status) end
  local line = format("workflows: GET %s -> %s %dms attempt %d", ev.url, result,
    floor((ev.elapsed or 0) * 1000 + 0.5), ev.attempt)
  if ev.request_id then line = line .. " request " .. ev.request_id end
  if ev.window then line = line .. " window " .. ev.window end
  io.stderr:write(errors.without_secrets(line, secrets), "\n")
end

local function hook_failed(ctx, problem)
  ctx.event_failures = ctx.event_failures + 1
  if ctx.event_failures > 1 then return end
  M.warn(errors.without_secrets(format("workflows: the on_event hook raised an error (%s); "
    .. "later ones are only counted (client:event_failures())", tostring(problem)),
    ctx.secrets))
end

-- The function that takes every event of the client of `ctx`, or nil when nothing
-- listens (`hook`: the on_event option; `debug`: WORKFLOWS_DEBUG=1).
function M.dispatcher(ctx, hook, debug)
  ctx.event_failures = 0
  if not hook and not debug then return nil end
  local secrets = ctx.secrets
  return function(ev)
    if debug then debug_line(ev, secrets) end
    if hook then
      local ok, problem = pcall(hook, ev)
      if not ok then hook_failed(ctx, problem) end
    end
  end
end

-- A URL as events show it: never with the token in it.
function M.url(ctx, url)
  return errors.without_secrets(url, ctx.secrets)
end

-- `page` handed to the caller, from the request `job` that brought it.
function M.page(ctx, job, page)
  ctx.on_event { type = "page", url = M.url(ctx, job.url), offset = page.offset,
    items = #page.items, limit = page.limit, has_more = page.hasMore,
    request_id = page.requestId, attempts = job.attempts }
end

return M
