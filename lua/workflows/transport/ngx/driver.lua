--[[ The OpenResty transport: HTTP/1.1 over nginx's cosockets, so that a call made in
a request handler or a timer never blocks the worker. Its registry entry,
workflows.transport.ngx, loads it with the client's first transport inside nginx.

Each attempt runs on a light thread (ngx.thread.spawn) that connects, sends the
request, feeds what it reads to workflows.http1 and hands the raw body to the core
(core.response_outcome), so pages and errors are exactly the curl path's: that is
workflows.transport.ngx.exchange, and its failures' wording is
workflows.transport.ngx.outcomes. This module runs the threads and waits. Waits
are an ngx.semaphore posted when an attempt finishes, or ngx.sleep for a backoff.
Connections go back to nginx's pool (setkeepalive), one pool per scheme, host and
port, and per proxy, client certificate and trust settings
(workflows.transport.ngx.network, which also opens CONNECT tunnels).

Cosockets and light threads belong to the request that made them: there is one
transport per client per request (or timer), kept in ngx.ctx. Where cosockets do
not work (init, init_worker, set, log, the filters) a call fails with kind
invalid_argument instead of falling back to blocking libcurl. ]]

local outcomes = require "workflows.transport.ngx.outcomes"
local exchange = require("workflows.transport.ngx.exchange").exchange
local registry_entry = require "workflows.transport.ngx"

local setmetatable, pcall, tostring, error, pairs, require = setmetatable, pcall,
  tostring, error, pairs, require
local format = string.format

local failure, described = outcomes.failure, outcomes.described
local ngx_api = registry_entry.api

local M = {}

-- nginx's shortest sleep: ngx.sleep rounds to whole milliseconds.
local SHORTEST_WAIT = 0.001

-- Phases in which cosockets, light threads and semaphores work.
local COSOCKET_PHASES = { rewrite = true, server_rewrite = true, access = true,
  content = true, timer = true, ssl_cert = true, ssl_session_fetch = true,
  ssl_client_hello = true }

-- Why this code cannot use cosockets, or nil when it can.
function M.unavailable()
  local ngx = ngx_api()
  if not ngx then
    return 'transport "ngx" needs OpenResty: the ngx API is not available here'
  end
  local phase = ngx.get_phase()
  if COSOCKET_PHASES[phase] then return nil end
  return format("nginx's %s phase has no cosockets, and the client will not block the "
    .. "worker with libcurl: make the call from a timer (ngx.timer.at(0, function() ... end)) "
    .. "or from a rewrite, access or content handler, or pass transport = \"curl\" to block "
    .. "on purpose", phase == "init_worker" and "init_worker_by_lua*"
      or phase == "exit_worker" and "exit_worker_by_lua*"
      or tostring(phase) .. "_by_lua*")
end

-- -------------------------------------------------------------- attempts

local Attempt = {}
Attempt.__index = Attempt

function Attempt:done()
  return self.outcome ~= nil
end

function Attempt:result()
  local outcome = self.outcome
  if outcome == nil then error("the attempt is still running", 2) end
  return outcome
end


-- No longer counted in flight; idempotent.
local function landed(attempt)
  local transport = attempt.transport
  if transport.live[attempt] then
    transport.live[attempt] = nil
    transport.count = transport.count - 1
  end
end

local function finish(attempt, outcome)
  if attempt.outcome then return end
  attempt.outcome = outcome
  attempt.thread = nil
  landed(attempt)
  local sema = attempt.transport.sema
  local waiting = -sema:count()
  if waiting > 0 then sema:post(waiting) end
end

local function perform(attempt, ngx)
  local ok, outcome = pcall(exchange, attempt, ngx)
  if not ok then
    outcome = failure("network", "the nginx transport failed: " .. tostring(outcome))
    if attempt.sock then attempt.sock:close() end
  end
  finish(attempt, outcome)
end

-- Stops the attempt's thread (which closes its socket) unless it has finished;
-- idempotent. Only the coroutine that started an attempt may kill its thread: from
-- another, the thread runs on and closes its connection instead of pooling it.
function Attempt:release()
  if self.released then return end
  self.released = true
  landed(self)
  local thread = self.thread
  if thread then
    self.thread = nil
    local killed = pcall(self.ngx.thread.kill, thread)
    if killed and self.sock then
      pcall(self.sock.close, self.sock)
      self.sock = nil
    end
  end
end

-- From a finalizer (a walk dropped without close()), which may run in another
-- request or a timer, where this attempt's thread and socket must not be touched:
-- only marks it. Its thread sees the mark at its next step, closes its socket and
-- ends; nginx ends it anyway with the request that made it.
function Attempt:abandon()
  self.abandoned = true
end

-- -------------------------------------------------------------- transports

local Transport = {}
Transport.__index = Transport
Transport.name = "ngx"  -- what events call it

-- `settings`: the client's pool_size and pool_idle_timeout.
local function new_transport(settings, ngx)
  return setmetatable({
    settings = settings,
    ngx = ngx,
    request_ctx = ngx.ctx,
    sema = require("ngx.semaphore").new(0),
    live = {},             -- attempt -> true while in flight
    count = 0,
    closed = false,
  }, Transport)
end

local function check_request(self)
  if self.ngx.ctx ~= self.request_ctx then
    local errors = require "workflows.errors"
    error(errors.invalid_argument("a call or walk begun in one nginx request (or timer) cannot "
      .. "go on in another: cosockets belong to the request that made them"), 0)
  end
end

function Transport:start(request)
  local ngx = self.ngx
  local attempt = setmetatable({ transport = self, ngx = ngx, request = request,
    settings = self.settings, outcome = nil, released = false }, Attempt)
  if self.closed then
    attempt.outcome = failure("network", "the nginx transport is closed")
    return attempt
  end
  check_request(self)
  self.live[attempt] = true
  self.count = self.count + 1
  local ok, thread = pcall(ngx.thread.spawn, perform, attempt, ngx)
  if not ok then
    finish(attempt, failure("network", "could not start a light thread: " .. described(thread)))
  elseif not attempt.outcome then
    attempt.thread = thread
  end
  return attempt
end

function Transport:wait(seconds)
  check_request(self)
  -- nginx runs a shorter sleep as ngx.sleep(0), which logs a warning each time and
  -- returns at once: a caller waiting for a due time would spin
  if seconds < SHORTEST_WAIT then seconds = SHORTEST_WAIT end
  if self.count > 0 then
    self.sema:wait(seconds)
  else
    self.ngx.sleep(seconds)
  end
end

function Transport.flush() end  -- each attempt's thread sends at once

function Transport.drop(_, attempt)
  attempt:abandon()
end

-- The client was collected: its transports belong to requests, which end their
-- threads and cosockets themselves.
function Transport.abandon() end

-- Nothing of a task's: tasks run on a libuv loop, never inside nginx.
function Transport.release_task() end

function Transport:running()
  return self.count
end

function Transport:close()
  if self.closed then return end
  self.closed = true
  for attempt in pairs(self.live) do attempt:release() end
end

-- -------------------------------------------------------------- refusals

-- Where no cosocket can run: every attempt ends at once with the reason, kind
-- invalid_argument, so that list_runs returns it and walks raise it.
local Refusal = {}
Refusal.__index = Refusal

function Refusal:start()
  return setmetatable({ outcome = failure("invalid_argument", self.reason), released = false,
    transport = { live = {} } }, Attempt)
end
function Refusal.wait() end
function Refusal.flush() end
function Refusal.running() return 0 end
function Refusal.close() end
function Refusal.drop() end
function Refusal.abandon() end
function Refusal.release_task() end

-- -------------------------------------------------------------- the client's

-- The per-request transports, keyed by this private table inside ngx.ctx.
local REQUEST_KEY = {}

-- The transport for `client` in the running request or timer: one per client per
-- request, made on first use; a refusal where cosockets do not work.
function M.transport_for(client)
  local reason = M.unavailable()
  if reason then return setmetatable({ reason = reason }, Refusal) end
  local ngx = ngx_api()
  local request_ctx = ngx.ctx
  local mine = request_ctx[REQUEST_KEY]
  if not mine then
    mine = setmetatable({}, { __mode = "k" })
    request_ctx[REQUEST_KEY] = mine
  end
  local transport = mine[client]
  if not transport or transport.closed then
    transport = new_transport({ pool_size = client.config.pool_size,
      pool_idle_timeout = client.config.pool_idle_timeout }, ngx)
    mine[client] = transport
  end
  return transport
end

-- The transport `client` has in the running request, if it made one there. Not from
-- a finalizer (it asks nginx for the phase and the request's ctx).
function M.found(client)
  local ngx = ngx_api()
  if not ngx or M.unavailable() then return nil end
  local mine = ngx.ctx[REQUEST_KEY]
  return mine and mine[client]
end

return M
