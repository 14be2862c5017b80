-- Careless but legal code must not crash an nginx worker: walks broken out of
-- without walk:close() (LuaJIT has no closing values) and clients never closed in
-- one request, collectgarbage() in the next, a few hundred times over. nginx runs
-- with a master and one worker, so that a crashed worker shows in the error log
-- ("exited on signal") while its replacement goes on answering.
local nginx = require "spec.support.nginx"
local sandbox = require "spec.support.sandbox"
local cli = require "spec.support.cli"
local careless = require "spec.support.careless_ngx"

local available, why = nginx.available()
if not available then
  describe("careless code inside nginx", function()
    pending("skipped: " .. why)
  end)
  return
end

local ROUNDS = 300
local CLIENTS = 2

-- GETs every path of `paths` in order on one curl process (one connection while
-- nginx keeps it); returns the statuses, 0 where no answer came.
local function get_all(server, paths)
  local config = {}
  for _, path in ipairs(paths) do
    config[#config + 1] = ("url = %q\noutput = \"/dev/null\"\n"):format(server.url .. path)
  end
  local config_path = os.tmpname()
  cli.write_file(config_path, table.concat(config))
  local pipe = assert(io.popen("env -u LD_PRELOAD curl -s --max-time 30 -w '%{http_code}\\n' -K "
    .. cli.shell_quote(config_path)))
  local statuses = {}
  for line in pipe:lines() do statuses[#statuses + 1] = tonumber(line) or 0 end
  pipe:close()
  os.remove(config_path)
  return statuses
end

-- The lines of `text` that hold `needle`, at most `most` of them, as one string.
local function lines_with(text, needle, most)
  local found = {}
  for line in text:gmatch("[^\n]+") do
    if line:find(needle, 1, true) then
      if #found < most then found[#found + 1] = line end
    end
  end
  return table.concat(found, "\n")
end

describe("careless code inside nginx", function()
  local sb, server

  lazy_setup(function()
    sb = sandbox.start()
    server = nginx.start(careless.server_options(sb.url, { workers = 1 }))
  end)

  lazy_teardown(function()
    if server then server:stop() end
    if sb then sb:stop() end
  end)

  it("survives dropped walks and unclosed clients, then a collection, " .. ROUNDS .. " times", function()
    local paths = {}
    for round = 1, ROUNDS do
      paths[#paths + 1] = careless.path { kind = "walk", clients = CLIENTS, prefetch = round % 9,
        stop = round % 30 + 1, latency = round % 3 }
      paths[#paths + 1] = careless.path { kind = "collect" }
    end
    local statuses = get_all(server, paths)
    local _, body = server:get("/careless/stats")
    local stats = careless.decode_stats(body)
    local log = server:error_log()

    -- the workload ran: every walk started, broke out early, and was collected after
    assert.equal(ROUNDS * CLIENTS, stats.walks)
    assert.equal(ROUNDS * CLIENTS, stats.breaks)
    assert.equal(ROUNDS, stats.collections)
    assert.is_nil(stats.closed)

    assert.equal("", lines_with(log, "exited on signal", 5))
    assert.equal("", lines_with(log, "[alert]", 5))
    assert.equal("", lines_with(log, "[crit]", 5))
    local wrong, first_wrong = 0, {}
    for i, status in ipairs(statuses) do
      if status ~= 200 then
        wrong = wrong + 1
        if #first_wrong < 5 then first_wrong[#first_wrong + 1] = paths[i] .. " -> " .. status end
      end
    end
    assert.equal(#paths, #statuses)
    assert.equal(0, wrong, table.concat(first_wrong, ", "))
    assert.equal(200, (server:get("/ping")))
  end)
end)
