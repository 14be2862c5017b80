-- What a program loads: a call or a walk that goes well loads only the modules it
-- runs; the others come with their first use. Each case runs in a fresh interpreter.
local fixtures = require "spec.support.fixtures"
local cli = require "spec.support.cli"

-- The modules a walk that goes well loads, on every Lua.
local WALK = { "workflows", "workflows.budget", "workflows.core", "workflows.errors",
  "workflows.ledger",
  "workflows.options", "workflows.pager", "workflows.proxy", "workflows.request",
  "workflows.retry", "workflows.transport", "workflows.transport.cqueues",
  "workflows.transport.curl", "workflows.transport.ngx", "workflows.transport.uv",
  "workflows.window" }

-- Runs `body` (Lua source, with `workflows`, SB and TOKEN defined) in a fresh
-- interpreter; returns what it printed, and the workflows modules loaded then beyond
-- those of a walk (the set of names).
local function run(sb, body)
  local out, err, status = cli.run_lua(([[
    local workflows = require "workflows"
    local SB, TOKEN = %q, %q
    %s
    local names = {}
    for name in pairs(package.loaded) do
      if name == "workflows" or name:find("^workflows%%.") then names[#names + 1] = name end
    end
    table.sort(names)
    io.write("loaded: ", table.concat(names, " "), "\n")
  ]]):format(sb.url, sb.token, body))
  assert.equal(0, status, err)
  local printed, loaded = out:match("^(.-)loaded: ([^\n]*)\n$")
  local names = {}
  for name in loaded:gmatch("%S+") do names[name] = true end
  return printed, names
end

local function beyond_walk(names)
  local extra = {}
  for name in pairs(names) do extra[name] = true end
  for _, name in ipairs(WALK) do extra[name] = nil end
  return extra
end

describe("loading", function()
  local sb = fixtures.sandbox()

  it("a call and a walk that go well load only the modules they run", function()
    local printed, names = run(sb, [[
      local client = workflows.new { base_url = SB, token = TOKEN }
      local page = assert(client:list_runs("wf_demo", { limit = 5 }))
      local count = 0
      for _ in client:runs("wf_demo") do count = count + 1 end
      print(#page.items, count)
    ]])
    assert.equal("5\t250\n", printed)
    local list = {}
    for name in pairs(names) do list[#list + 1] = name end
    table.sort(list)
    assert.same(WALK, list)
  end)

  local cases = {
    { "a failure loads nothing more",
      [[print(tostring(select(2, workflows.new { base_url = SB, token = TOKEN }:list_runs(""))))]],
      'workflows: invalid argument: workflow id must be a non-empty string (got "")\n',
      {} },
    { "a misuse loads nothing more",
      [[print(select(2, pcall(workflows.new, { timout = 1 })).message)]],
      'unknown option "timout" (did you mean "timeout"?)\n',
      {} },
    { "on_event loads the events and the check of the option",
      [[local seen = 0
        local client = workflows.new { base_url = SB, token = TOKEN,
          on_event = function() seen = seen + 1 end }
        assert(client:list_runs("wf_demo", { limit = 1 }))
        print(seen)]],
      "3\n",
      { ["workflows.events"] = true, ["workflows.production_options"] = true } },
    { "headers load the check of the option",
      [[print(#assert(workflows.new { base_url = SB, token = TOKEN,
          headers = { ["X-Probe"] = "1" } }:list_runs("wf_demo", { limit = 2 })).items)]],
      "2\n",
      { ["workflows.production_options"] = true } },
    { "a certificate option loads the certificate's check",
      [[print(select(2, pcall(workflows.new, { client_key = "key.pem" })).message)]],
      'option "client_key" needs client_cert as well\n',
      { ["workflows.identity"] = true } },
    { "the callback form of list_runs loads the tasks",
      [[workflows.new { base_url = SB, token = TOKEN }:list_runs("wf_demo", { limit = 2 },
          function(page) print(#page.items) end)]],
      "2\n",
      { ["workflows.tasks"] = true, ["workflows.handles"] = true } },
    { 'transport "ngx" outside nginx loads the nginx transport, which refuses',
      [[print(select(2, workflows.new { base_url = SB, token = TOKEN, transport = "ngx" }
          :list_runs("wf_demo")).message)]],
      'transport "ngx" needs OpenResty: the ngx API is not available here\n',
      { ["workflows.http1"] = true,
        ["workflows.identity"] = true, ["workflows.transport.ngx.driver"] = true,
        ["workflows.transport.ngx.exchange"] = true,
        ["workflows.transport.ngx.network"] = true,
        ["workflows.transport.ngx.outcomes"] = true } },
  }
  for _, case in ipairs(cases) do
    local name, body, printed, extra = case[1], case[2], case[3], case[4]
    it(name .. ", and nothing else", function()
      local out, names = run(sb, body)
      assert.equal(printed, out)
      assert.same(extra, beyond_walk(names))
    end)
  end
end)
