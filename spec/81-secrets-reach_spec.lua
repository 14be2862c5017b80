-- Nothing the API hands out leads to the token: not the client, a walk, a page,
-- an error or a task, by pairs, by indexing or through metatables.

local workflows = require "workflows"
local errors = require "workflows.errors"
local sandbox = require "spec.support.sandbox"
local fixtures = require "spec.support.fixtures"

local TOKEN = "reach-test-token-5d41402abc4b2a76"
-- Keys a caller might try on any value: the documented fields and the usual
-- suspects of an object that keeps its state in itself.
local PROBES = { "ctx", "config", "token", "state", "session", "client", "walk", "queue",
  "options", "settings", "_ctx", "__index", "transport", "registry", "items", "page" }

-- Every string reachable from `root`, with the path that led to it.
local function reachable_strings(root)
  local found, visited = {}, {}
  local function visit(value, path)
    local kind = type(value)
    if kind == "string" then
      found[#found + 1] = { value = value, path = path }
      return
    end
    if (kind ~= "table" and kind ~= "userdata" and kind ~= "function") or visited[value] then
      return
    end
    visited[value] = true
    if kind == "table" then
      for key, child in pairs(value) do
        visit(key, path .. "[key]")
        visit(child, path .. "." .. tostring(key))
      end
    end
    if kind ~= "function" then
      for _, key in ipairs(PROBES) do
        local ok, child = pcall(function() return value[key] end)
        if ok and child ~= nil then visit(child, path .. "." .. key) end
      end
      visit(getmetatable(value), path .. "<metatable>")
    end
  end
  visit(root, "")
  return found
end

local function assert_no_token(value, what)
  for _, item in ipairs(reachable_strings(value)) do
    if item.value:find(TOKEN, 1, true) then error(what .. item.path .. " holds the token", 0) end
  end
end

describe("the token", function()
  local sb

  lazy_setup(function() sb = sandbox.start { token = TOKEN } end)
  lazy_teardown(function() sb:stop() end)

  local function client()
    return fixtures.sandbox_client(sb, { timeout = 5 })
  end

  it("would be found by this search where a walk held the client's settings", function()
    local leaky = setmetatable({}, { __index = { ctx = { config = { token = TOKEN } } } })
    assert.has_error(function() assert_no_token(leaky, "walk") end,
      "walk.ctx.config.token holds the token")
  end)

  it("is out of reach from a client", function()
    assert_no_token(client(), "client")
  end)

  it("is out of reach from a walk, before, during and after it", function()
    local c = client()
    local iterator, _, _, walk = c:pages("wf_demo", { limit = 50 })
    assert_no_token(walk, "walk")
    local page = iterator()
    assert_no_token(walk, "walk")
    assert_no_token(page, "page")
    walk:close()
    assert_no_token(walk, "closed walk")
  end)

  it("is out of reach from an error", function()
    local _, err = client():list_runs("wf_demo;status=503;retry_after=1", { limit = 1 })
    assert.equal("http", err.kind)
    assert_no_token(err, "error")
  end)

  it("is out of reach from the error a walk raises", function()
    local ok, err = pcall(function()
      for _ in client():runs("wf_unknown") do end
    end)
    assert.is_false(ok)
    assert.equal(404, err.status)
    assert_no_token(err, "raised error")
  end)

  it("is out of reach from the error workflows.new raises", function()
    local ok, err = pcall(workflows.new, { token = TOKEN, tokn = TOKEN })
    assert.is_false(ok)
    assert_no_token(err, "error of workflows.new")
  end)
end)

describe("errors.without_secret()", function()
  local cases = {
    { "a long token is hidden wherever it appears",
      "bad token abcdefgh12 and xabcdefgh12y", "abcdefgh12", "bad token *** and x***y" },
    { "a short token standing alone is hidden",
      "token 'ab1' is invalid", "ab1", "token '***' is invalid" },
    { "a short token inside a longer word is left alone",
      "workflow not found (request req_ab1c)", "ab1", "workflow not found (request req_ab1c)" },
    { "a one-character token does not garble the words it is part of",
      "the workflow named a-b was not found", "a", "the workflow named a-b was not found" },
    { "a one-character token standing alone is hidden",
      "token: a", "a", "token: ***" },
    { "text without the token comes back as it is", "all fine", "secret-token", "all fine" },
  }
  for _, case in ipairs(cases) do
    it(case[1], function()
      assert.equal(case[4], errors.without_secret(case[2], case[3]))
    end)
  end

  it("leaves nil and an empty secret alone", function()
    assert.is_nil(errors.without_secret(nil, "token"))
    assert.equal("text", errors.without_secret("text", ""))
  end)
end)
