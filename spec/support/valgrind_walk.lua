-- The program tools/valgrind-check.sh runs under valgrind: a whole walk, the error
-- paths, and walks broken off in every way a caller can, against the sandbox at
-- $SANDBOX_URL. Prints "ok NAME" or "not ok NAME: why" per check. Every client is
-- dropped and collected before the end, and lua5.4 closes its state on exit, so
-- anything the core still holds then is a leak.
local workflows = require "workflows"

local url = assert(os.getenv("SANDBOX_URL"), "SANDBOX_URL is not set")
local token = os.getenv("SANDBOX_TOKEN") or "sandbox-token"

local function client(extra)
  local config = { base_url = url, token = token, max_retries = 1, timeout = 20 }
  for key, value in pairs(extra or {}) do config[key] = value end
  return workflows.new(config)
end

local function check(name, fn)
  local ok, err = pcall(fn)
  if ok then
    print("ok " .. name)
  else
    print("not ok " .. name .. ": " .. tostring(err))
  end
end

local function expect_error(err, kind)
  assert(type(err) == "table", "expected an error table, got " .. tostring(err))
  assert(err.kind == kind, "expected kind " .. kind .. ", got " .. tostring(err))
end

check("a walk yields all 250 runs of wf_demo", function()
  local count = 0
  for _ in client():runs("wf_demo", { limit = 50 }) do count = count + 1 end
  assert(count == 250, "got " .. count .. " runs")
end)

check("pages of an empty listing", function()
  local count = 0
  for page in client():pages("wf_empty") do count = count + #page.items end
  assert(count == 0, "got " .. count .. " runs")
end)

check("error paths: http, retried http, decode, too large, invalid argument", function()
  local c = client()
  local page, err = c:list_runs("wf_nope")
  assert(page == nil)
  local _
  expect_error(err, "http")
  _, err = c:list_runs("wf_demo;status=503;n=valgrind")
  assert(err.attempts == 2, tostring(err))
  expect_error(err, "http")
  _, err = c:list_runs("wf_demo;fault=invalid_json")
  expect_error(err, "decode")
  _, err = c:list_runs("wf_demo;fault=html")
  expect_error(err, "http")
  _, err = client { max_body_bytes = 4096 }:list_runs("wf_demo", { limit = 100 })
  expect_error(err, "decode")
  _, err = c:list_runs("")
  expect_error(err, "invalid_argument")
  local ok, raised = pcall(function()
    for _ in c:runs("wf_demo;fault=wrong_shape") do end
  end)
  assert(not ok)
  expect_error(raised, "decode")
end)

check("transport failures: reset, short body, timeout, refused connection", function()
  local c = client { max_retries = 0 }
  local _, err = c:list_runs("wf_demo;fault=reset")
  expect_error(err, "network")
  _, err = c:list_runs("wf_demo;fault=short")
  expect_error(err, "network")
  _, err = client { max_retries = 0, timeout = 1 }:list_runs("wf_demo;fault=silent")
  expect_error(err, "timeout")
  _, err = workflows.new { base_url = "http://127.0.0.1:9", token = token, max_retries = 0 }
    :list_runs("wf_demo")
  expect_error(err, "network")
end)

check("walks broken off: by break, by an error in the loop body, by dropping them", function()
  local c = client { prefetch = 3 }
  for _ in c:runs("wf_big", { limit = 100 }) do break end  -- luacheck: ignore 512
  pcall(function()
    for _ in c:runs("wf_big", { limit = 100 }) do error("stop") end
  end)
  for _ = 1, 3 do
    local iterator = c:runs("wf_big", { limit = 100 })
    iterator()                                   -- started, never finished, never closed
  end
  local pages = c:pages("wf_demo;latency=200", { limit = 10 })
  pages()
  c = nil                                        -- luacheck: ignore 311
  collectgarbage()
  collectgarbage()
end)

check("a client dropped with transfers in flight", function()
  local c = client { prefetch = 4 }
  local iterator = c:runs("wf_demo;latency=300", { limit = 10 })
  local ok = pcall(iterator, nil, nil)          -- the first page arrives; four are in flight
  assert(ok)
  c, iterator = nil, nil                        -- luacheck: ignore 311
  collectgarbage()
  collectgarbage()
end)

collectgarbage()
collectgarbage()
