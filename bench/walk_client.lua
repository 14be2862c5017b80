-- Walks every run with this client: `for run in client:runs(...)`.
--
--   lua5.4 bench/walk_client.lua BASE_URL WORKFLOW TOKEN [PREFETCH]
--
-- PREFETCH is a number, or absent for the client's default. Prints the number of runs.
local workflows = require "workflows"

local base, workflow, token, prefetch = arg[1], arg[2], arg[3], arg[4]
local options = { base_url = base, token = token }
if prefetch and prefetch ~= "default" then options.prefetch = assert(tonumber(prefetch)) end
local client = workflows.new(options)
local count = 0
for run in client:runs(workflow, { limit = 100 }) do
  if run.id then count = count + 1 end
end
print(count)
