-- Careless but legal code must not crash or wedge an nginx worker: walks broken
-- out of without walk:close() (LuaJIT has no closing values) and clients never
-- closed in one request (every other one ending with ngx.exit, which ends the light
-- threads of the pages still in flight), collectgarbage() in the next, a few
-- hundred times. nginx runs with a master and one worker, so that a crashed worker
-- shows in the error log ("exited on signal") while its replacement goes on answering.
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

local ROUNDS = 200
local CLIENTS = 1   -- a client and its walk a request: each round's request drops both
-- seconds for one request; a round takes some 50 ms. curl stops at the first
-- request that gets no answer in time, so that a wedged worker fails the test fast
local MAX_TIME = 5

-- GETs every path of `paths` in order on one curl process (one connection while
-- nginx keeps it); returns the statuses, 0 where no answer came.
local function get_all(server, paths)
  local config = {}
  for _, path in ipairs(paths) do
    config[#config + 1] = ("url = %q\noutput = \"/dev/null\"\n"):format(server.url .. path)
  end
  local config_path = os.tmpname()
  cli.write_file(config_path, table.concat(config))
  local pipe = assert(io.popen("env -u LD_PRELOAD curl -s --fail-early --max-time " .. MAX_TIME
    .. " -w '%{http_code}\\n' -K "
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

-- The pids of the master's children: its one worker.
local function worker_of(server)
  return (cli.read_file("/proc/" .. server.pid .. "/task/" .. server.pid .. "/children") or "")
    :gsub("%s+$", "")
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

  describe("dropped walks and unclosed clients in one request, a collection in the next, "
    .. ROUNDS .. " times", function()
    local paths, statuses, stats, log, worker_before, worker_after = {}, nil, nil, nil, nil, nil

    lazy_setup(function()
      for round = 1, ROUNDS do
        -- collections inside the walks' loop bodies too: they find the walks that
        -- the request before dropped, whose pages ngx.exit cut short. Every fourth
        -- walk breaks out on the first run of its second page, with the pages
        -- after it in flight.
        paths[#paths + 1] = careless.path { kind = "walk", clients = CLIENTS, prefetch = round % 9,
          stop = round % 4 == 0 and 11 or round % 30 + 1, latency = 3 + round % 4, collect = 2,
          exit = round % 2 }
        paths[#paths + 1] = careless.path { kind = "collect" }
      end
      worker_before = worker_of(server)
      statuses = get_all(server, paths)
      local _, body = server:get("/careless/stats", 10)
      stats = careless.decode_stats(body)
      log = server:error_log()
      worker_after = worker_of(server)
    end)

    it("crash no worker", function()
      assert.equal("", lines_with(log, "exited on signal", 5))
      assert.equal("", lines_with(log, "[alert]", 5))
      assert.equal("", lines_with(log, "[crit]", 5))
      assert.equal(worker_before, worker_after)
    end)

    it("answer every request with 200", function()
      local wrong, first_wrong = 0, {}
      for i, status in ipairs(statuses) do
        if status ~= 200 then
          wrong = wrong + 1
          if #first_wrong < 5 then first_wrong[#first_wrong + 1] = paths[i] .. " -> " .. status end
        end
      end
      assert.equal(0, wrong, table.concat(first_wrong, ", "))
      -- curl gives up at the first request that got no answer within MAX_TIME
      assert.equal(#paths, #statuses, ("%d requests answered of %d; no answer to %s"):format(
        #statuses, #paths, tostring(paths[#statuses + 1])))
    end)

    it("run the whole workload: every walk broken out of, and collected", function()
      assert.same({ walks = ROUNDS * CLIENTS, breaks = ROUNDS * CLIENTS, collections = ROUNDS,
        exits = math.floor(ROUNDS / 2) }, { walks = stats.walks, breaks = stats.breaks,
        collections = stats.collections, exits = stats.exits })
      assert.is_true((stats.loop_collections or 0) >= ROUNDS * CLIENTS)
      assert.is_nil(stats.closed)
    end)

    it("leave the worker answering", function()
      assert.equal(200, (server:get("/ping", 10)))
      assert.equal(200, (server:get(careless.path { kind = "walk", prefetch = 4, stop = 5 }, 10)))
    end)
  end)
end)
