-- Careless but legal code must not crash, wedge or leak inside Neovim: the workload
-- of spec/98-careless-luv_spec.lua (spec/support/careless_loop.lua: ten clients on
-- vim.loop, each task breaking out of twenty prefetching walks without
-- walk:close(), collectgarbage() every 7 ms, every client dropped) in
-- `nvim --headless -u NONE` with the LuaJIT build of the core, bounded by `timeout`.
local sandbox = require "spec.support.sandbox"
local cli = require "spec.support.cli"

local CLIENTS, WALKS_EACH = 10, 20
local BOUND = 60   -- seconds before nvim is killed; it takes about one

local function succeeded(command)
  local status = os.execute(command)
  return status == true or status == 0
end

local describe_nvim = succeeded("command -v nvim >/dev/null 2>&1") and describe or pending

local function exit_meaning(status)
  if status == 124 or status == 137 then return ("exit status %d: killed after %d s"):format(status, BOUND) end
  if status and status > 128 then return ("exit status %d: died of signal %d"):format(status, status - 128) end
  return "exit status " .. tostring(status)
end

describe_nvim("careless code inside Neovim", function()
  local sb
  local report, stderr, status

  lazy_setup(function()
    assert(succeeded "make -s LUA=luajit >/dev/null", "make LUA=luajit failed")
    sb = sandbox.start()
    local root = cli.root
    if root:sub(1, 1) ~= "/" then root = os.getenv("PWD") .. "/" .. root end
    local report_path, err_path = os.tmpname(), os.tmpname()
    os.remove(report_path)
    local command = table.concat({
      "env -u LD_PRELOAD",
      "CARELESS_SB=" .. cli.shell_quote(sb.url),
      "CARELESS_REPORT=" .. cli.shell_quote(report_path),
      "CARELESS_MODE=ten",
      "CARELESS_WALKS=" .. WALKS_EACH,
      "CARELESS_ROOT=" .. cli.shell_quote(root),
      "CARELESS_CORE=" .. cli.shell_quote(root .. "build/luajit"),
      -- -k: Neovim handles SIGTERM on its loop, which a stuck callback never lets run
      "timeout -k 5 " .. BOUND .. " nvim --headless -u NONE",
      "-c " .. cli.shell_quote("luafile " .. root .. "spec/support/careless_loop.lua"),
      "-c 'qa!' </dev/null >/dev/null 2>" .. cli.shell_quote(err_path),
      "; echo \"exit=$?\"",
    }, " ")
    local pipe = assert(io.popen(command))
    status = tonumber(pipe:read("*a"):match("exit=(%d+)"))
    pipe:close()
    stderr = cli.read_file(err_path) or ""
    local chunk = cli.read_file(report_path)
    os.remove(report_path)
    os.remove(err_path)
    report = chunk and assert((loadstring or load)(chunk))() or {}  -- luacheck: ignore
  end)

  lazy_teardown(function()
    if sb then sb:stop() end
  end)

  describe("ten clients that break out of prefetching walks", function()
    it("run the whole workload: every walk broken out of, with collections meanwhile", function()
      assert.is_true(report.finished, "no report at the end: " .. exit_meaning(status))
      assert.equal("nvim", report.host)
      assert.equal(CLIENTS, report.clients)
      assert.equal(CLIENTS * WALKS_EACH, report.walks)
      assert.equal(CLIENTS * WALKS_EACH, report.breaks)
      assert.is_true((report.collections or 0) > 0, "no collection ran during the walks")
    end)

    it("show no error: nothing on stderr, no message", function()
      assert.equal("", stderr)
      assert.equal("", report.messages)
    end)

    it("meet no EEXIST", function()
      assert.is_nil(stderr:find("EEXIST", 1, true))
      assert.is_nil((report.messages or ""):find("EEXIST", 1, true))
    end)

    it("let the script end", function()
      assert.is_nil(report.wedged)
      assert.equal(0, status, exit_meaning(status))
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
