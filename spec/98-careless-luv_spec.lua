-- Careless but legal code must not wedge, crash or leak a luv loop: ten clients on
-- one loop, each with a task that breaks out of twenty prefetching walks in a row
-- without walk:close() (the while form, which has no closing value on any Lua),
-- collectgarbage() every 7 ms meanwhile, every client dropped without
-- client:close(). The workload (spec/support/careless_loop.lua) runs in a child
-- process of this Lua, bounded by `timeout`: a crash, a loop that never ends or a
-- line on stderr shows there, not in busted.
local sandbox = require "spec.support.sandbox"
local cli = require "spec.support.cli"

-- Asked of a child: luv loaded here and dropped with this file (busted unloads a
-- file's modules) frees its loop when collected, under the next file that loads luv.
local _, _, no_luv = cli.run_lua('os.exit(pcall(require, "luv") and 0 or 1)')
local describe_luv = no_luv == 0 and describe or pending

local CLIENTS, WALKS_EACH = 10, 20
local BOUND = 60   -- seconds before the child is killed; it takes about one

-- What an exit status says: the shell reports a death by signal N as 128 + N, and
-- timeout(1) its own kill as 124 (or 137 after -k).
local function exit_meaning(status)
  if status == 124 or status == 137 then return ("exit status %d: killed after %d s"):format(status, BOUND) end
  if status and status > 128 then return ("exit status %d: died of signal %d"):format(status, status - 128) end
  return "exit status " .. tostring(status)
end

describe_luv("careless code on a luv loop (" .. _VERSION .. ")", function()
  local sb

  lazy_setup(function()
    sb = sandbox.start()
  end)

  lazy_teardown(function()
    sb:stop()
  end)

  -- Runs the workload in a child of this Lua; returns its report (a table, empty
  -- when it wrote none), its stderr and its exit status.
  local function run_workload()
    local report_path = os.tmpname()
    os.remove(report_path)
    local prefix = table.concat({
      "env",
      "CARELESS_SB=" .. cli.shell_quote(sb.url),
      "CARELESS_REPORT=" .. cli.shell_quote(report_path),
      "CARELESS_MODE=ten",
      "CARELESS_WALKS=" .. WALKS_EACH,
      "timeout -k 5 " .. BOUND,
    }, " ")
    local _, stderr, status = cli.run_lua('dofile("spec/support/careless_loop.lua")', prefix)
    local chunk = cli.read_file(report_path)
    os.remove(report_path)
    local report = chunk and assert((loadstring or load)(chunk))() or {}  -- luacheck: ignore
    return report, stderr, status
  end

  describe("ten clients that break out of prefetching walks", function()
    local report, stderr, status

    lazy_setup(function()
      report, stderr, status = run_workload()
    end)

    it("run the whole workload: every walk broken out of, with collections meanwhile", function()
      assert.is_true(report.finished, "no report at the end: " .. exit_meaning(status))
      assert.equal(CLIENTS, report.clients)
      assert.equal(CLIENTS * WALKS_EACH, report.walks)
      assert.equal(CLIENTS * WALKS_EACH, report.breaks)
      assert.equal(CLIENTS, report.dropped)
      assert.is_true((report.collections or 0) > 0, "no collection ran during the walks")
    end)

    it("write nothing on stderr", function()
      assert.equal("", stderr)
    end)

    it("meet no EEXIST", function()
      assert.is_nil(stderr:find("EEXIST", 1, true))
      for _, failure in ipairs(report.failures or {}) do
        assert.is_nil(failure:find("EEXIST", 1, true), failure)
      end
    end)

    it("let the loop end by itself, and the script with it", function()
      assert.is_nil(report.wedged, tostring(report.wedged) .. ": " .. tostring(report.wedged_handles))
      assert.equal(0, status, exit_meaning(status))
      assert.is_true(report.finished)
      assert.equal("", report.handles_left)
    end)

    it("call every on_done, each with ok", function()
      assert.is_true(report.finished, "no report at the end: " .. exit_meaning(status))
      assert.same({ tasks = CLIENTS, done = CLIENTS, ok = CLIENTS },
        { tasks = report.tasks, done = report.done, ok = report.done_ok })
    end)

    it("leave the descriptors where they were before the first client, once collected", function()
      assert.is_true(report.finished, "no report at the end: " .. exit_meaning(status))
      assert.equal(report.descriptors_before, report.descriptors_after)
    end)
  end)
end)
