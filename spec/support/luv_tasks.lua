-- What the specs of tasks on standalone luv share (spec/91-luv-tasks-*_spec.lua): a
-- sandbox and the clients of it that a describe block makes, a task run to its end,
-- and what a task's outcome is compared with the blocking path's through.
--
--   local luv_tasks = require "spec.support.luv_tasks"
--   describe("...", function()
--     local sb, client_with, in_task, blocking_client = luv_tasks.block()
--     sb                          -- the block's sandbox (spec/support/fixtures.lua)
--     client_with(options)        -- a client on the luv loop, timeout 5 s by default
--     in_task(client, body)       -- { body's results }, { ok = ..., err = ... }
--     blocking_client(options)    -- the same options as client_with, without the loop
local fixtures = require "spec.support.fixtures"
local loop = require "spec.support.luv_loop"
local assert = require "luassert"

local uv = loop.uv

local M = {}

M.YIELDS_IN_FOR = fixtures.YIELDS_IN_FOR

M.WAIT = 20   -- seconds before a test that did not end fails

M.drain, M.comparable = fixtures.drain, fixtures.comparable

-- The sandbox of the describe block that calls this (never a test), and its clients:
-- the sandbox starts before the block's first test and stops after its last
-- (lazy_setup and lazy_teardown, after the clients and the loop's handles are
-- closed); after each test its clients are closed and no loop handle is left.
function M.block()
  local busted = require "busted"
  local clients = {}

  local function close_clients()
    for _, client in ipairs(clients) do client:close() end
  end

  busted.lazy_teardown(function()
    close_clients()
    loop.close_all()
  end)
  local sb = fixtures.sandbox()  -- its lazy_teardown runs after the one above

  busted.after_each(function()
    close_clients()
    clients = {}
    loop.drain()
    assert.same({}, loop.handles())
  end)

  local function client_with(options)
    local client = fixtures.sandbox_client(sb, { timeout = 5, loop = uv }, options)
    clients[#clients + 1] = client
    return client
  end

  local function blocking_client(options)
    local given = { timeout = 5 }
    for key, value in pairs(options or {}) do given[key] = value end
    given.loop = nil
    local client = fixtures.sandbox_client(sb, given)
    clients[#clients + 1] = client
    return client
  end

  -- Spawns `body` and runs the loop until it ends; returns what it returned in a
  -- table, and how it ended ({ ok, err }).
  local function in_task(client, body)
    local returned, ended
    client:spawn(function() returned = { body() } end,
      function(ok, err) ended = { ok = ok, err = err } end)
    loop.run_until(function() return ended ~= nil end, M.WAIT)
    return returned, ended
  end

  return sb, client_with, in_task, blocking_client
end

return M
