--[[ Transports: the one place where the layer waits, and their registry.

A transport carries HTTP attempts for one client and does every wait of the layer:
for an answer, for a backoff, for a Retry-After. The request jobs, the pager, the
options, the errors and the retry policy only plan; they never block, sleep or
yield, and they do not know which transport runs them. doc/transport.md is the
whole contract: what a transport module exports and what its transports do.

This module holds the registry (which transport serves the running code), the
client-wide operations over a client's transports (close, abandon, in flight, a
task's end), and the only wait loop (`M.await`). ]]

local request = require "workflows.request"
local errors = require "workflows.errors"
local core = require "workflows.core"

local error, require, ipairs, pairs, pcall = error, require, ipairs, pairs, pcall

local now = core.now

local M = {}

-- A wait ends as soon as something happens, so this only bounds how long one wait can
-- be mistaken for.
local LONGEST_SINGLE_WAIT = 1

-- The registry: the transport modules, in the order they are asked whether the running
-- code is theirs. The last one serves anything. A transport joins with its line here.
local MODULES = {
  "workflows.transport.ngx",      -- inside nginx: cosockets
  "workflows.transport.cqueues",  -- inside a coroutine of a cqueues controller
  "workflows.transport.uv",       -- inside a task of a client with a libuv loop
  "workflows.transport.curl",     -- anywhere else: blocking libcurl
}

local loaded

local function modules()
  if not loaded then
    loaded = {}
    for i, name in ipairs(MODULES) do loaded[i] = require(name) end
  end
  return loaded
end

-- The values the `transport` option takes: "auto" and every name a module answers to.
function M.names()
  local names, seen = { "auto" }, { auto = true }
  for _, module in ipairs(modules()) do
    for _, name in ipairs(module.names) do
      if not seen[name] then
        seen[name] = true
        names[#names + 1] = name
      end
    end
  end
  return names
end

local function answers_to(module, choice)
  if choice == "auto" then return true end
  for _, name in ipairs(module.names) do
    if name == choice then return true end
  end
  return false
end

-- module -> the function that makes its transports: its own, or its driver's, loaded
-- with the first transport and kept here, so that no later call asks `require` again.
local makers = {}

-- The module's transport for `client`, made on first use.
local function transport_for(module, client)
  local make = makers[module]
  if not make then
    make = module.transport_for or require(module.driver).transport_for
    makers[module] = make
  end
  return make(client)
end

-- The transport of the running code for `client` (the client's state, doc/transport.md):
-- the first module, among those the `transport` option allows, that claims the running
-- code; failing that the last one it allows (which then says why it cannot serve, as
-- the nginx one does outside nginx). Each makes its transport on first use.
function M.current(client)
  -- only a walk begun before client:close() can get here after it
  if client.closed then error(errors.invalid_argument("the client is closed"), 0) end
  local choice = client.config.transport
  local fallback
  for _, module in ipairs(modules()) do
    if answers_to(module, choice) then
      if module.claims(client) then return transport_for(module, client) end
      fallback = module
    end
  end
  return transport_for(fallback, client)
end

-- Calls `fn(transport)` for each transport `client` has where the running code can
-- reach it (its own, and those of the running request inside nginx).
local function each(client, fn)
  for _, module in ipairs(modules()) do
    local transport = module.found(client)
    if transport then fn(transport) end
  end
end

-- client:close(): releases every transport of `client` reachable here.
function M.close_all(client)
  each(client, function(transport) transport:close() end)
end

-- A finalizer's: `client` was collected. Only the transports it owns, and only their
-- abandon(), which never calls the host.
function M.abandon_all(client)
  for _, transport in pairs(client.transports) do pcall(transport.abandon, transport) end
end

-- Attempts in flight on `client`'s transports reachable here.
function M.in_flight(client)
  local count = 0
  each(client, function(transport) count = count + transport:running() end)
  return count
end

-- A task of `client` ended or was cancelled: each transport releases what it started.
function M.release_task(client, task)
  for _, transport in pairs(client.transports) do transport:release_task(task) end
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
    local wait = LONGEST_SINGLE_WAIT
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
