-- What the specs of bin/workflows share (spec/97-cli-*_spec.lua): a sandbox for the
-- describe block that calls block(), the environment that points the command at it,
-- the runs the library itself walks there to compare every format with, and the
-- command run in that environment (spec/support/cli.lua).
--
--   local cli_sandbox = require "spec.support.cli_sandbox"
--   cli_sandbox.TOKEN, cli_sandbox.id_of(directives)
--   describe("bin/workflows", function()
--     local sb, run, expected, env = cli_sandbox.block()
--     run(args [, options])   -- cli.run(args, options), in env unless options.env
--     expected                -- wf_demo's runs, as client:runs() gives them
--     env                     -- WORKFLOWS_BASE_URL and WORKFLOWS_API_TOKEN for sb
--   end)
local workflows = require "workflows"
local fixtures = require "spec.support.fixtures"
local cli = require "spec.support.cli"

local M = {}

M.TOKEN = "sandbox-token"

-- Ids "wf_demo;<directives>;n=cli-...": the demo workflow with the sandbox's faults
-- that `directives` name, for the one test that asked for them.
M.id_of = fixtures.demo_id_maker("cli")

-- Called inside a describe block (never inside a test): the sandbox starts before the
-- block's first test and stops after its last (fixtures.sandbox: lazy_setup and
-- lazy_teardown); `expected` and `env` are filled in once it runs.
function M.block()
  local busted = require "busted"
  local sb = fixtures.sandbox()
  local expected, env = {}, {}

  busted.lazy_setup(function()
    env.WORKFLOWS_BASE_URL, env.WORKFLOWS_API_TOKEN = sb.url, M.TOKEN
    -- what the library itself walks, to compare every format with
    local client = workflows.new { base_url = sb.url, token = M.TOKEN }
    for run in client:runs("wf_demo") do expected[#expected + 1] = run end
    client:close()
  end)

  local function run(args, options)
    options = options or {}
    options.env = options.env or env
    return cli.run(args, options)
  end

  return sb, run, expected, env
end

return M
