-- Uses the copy of lua-workflows that `luarocks make` installed into the tree given
-- as the first argument (tools/rock-smoke.sh sets the paths) against a fresh sandbox.
local tree = assert(arg[1], "usage: rock_smoke.lua TREE")

local function installed(name, path)
  local file = assert(package.searchpath(name, path))
  assert(file:sub(1, #tree) == tree, name .. " was loaded from " .. file .. ", not the rock")
end
installed("workflows.core", package.cpath)
-- (types.lua holds editor annotations only: nothing requires it)
-- every Lua module of the working tree must be in the rock
for file in io.popen("cd lua && find workflows -name '*.lua' ! -name types.lua | sort"):lines() do
  local name = file:gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
  installed(name, package.path)
end

local workflows = require "workflows"
local cjson = require "cjson"
local sandbox = require("spec.support.sandbox").start {}
local ok, err = pcall(function()
  local client = workflows.new { base_url = sandbox.url, token = sandbox.token }
  local page = assert(client:list_runs("wf_demo", { limit = 5 }))
  assert(#page.items == 5, "expected 5 runs, got " .. #page.items)
  local count = 0
  for _ in client:runs("wf_demo") do count = count + 1 end
  assert(count == 250, "expected 250 runs, got " .. count)

  -- the installed command, as a user runs it: no paths set, from another directory
  local pipe = assert(io.popen("cd / && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4"
    .. " WORKFLOWS_BASE_URL='" .. sandbox.url .. "' WORKFLOWS_API_TOKEN='" .. sandbox.token .. "' '"
    .. tree .. "/bin/workflows' page wf_demo --limit 3 2>&1"))
  local output = pipe:read("*a")
  pipe:close()
  local decoded = cjson.decode(output:match("^{.*}\n$") or "null")
  assert(type(decoded) == "table" and #decoded.items == 3,
    "the installed command did not list a page:\n" .. output)
end)
sandbox:stop()
assert(ok, err)
print("the installed rock lists wf_demo's 250 runs, and its command a page")
