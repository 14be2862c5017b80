-- One walk of every run of a workflow with this client, in a plain script:
--
--   lua5.4 bench/hosts/walk.lua BASE_URL WORKFLOW TOKEN PREFETCH [trace | CA_FILE]
--
-- PREFETCH: "default", "auto" or a number. Prints "RUNS CURRENT LARGEST HALVINGS":
-- the runs walked and walk:window() once the walk ended (the window's size then, the
-- largest it reached, how often the server made it halve). With `trace` it walks
-- page by page (client:pages, the same walk) and first prints, per page,
-- "page N MS RUNS CURRENT LARGEST HALVINGS" (MS since the walk started).
-- A CA_FILE (for a TLS server) is passed to the client as ca_file.
local workflows = require "workflows"
local core = require "workflows.core"

local base, workflow, token, prefetch, extra = arg[1], arg[2], arg[3], arg[4], arg[5]
local options = { base_url = base, token = token }
if prefetch ~= "default" then options.prefetch = tonumber(prefetch) or prefetch end
if extra and extra ~= "trace" then options.ca_file = extra end
local client = workflows.new(options)

local count, number, started = 0, 0, core.now()
local iterator, state, control, walk = client[extra == "trace" and "pages" or "runs"](client,
  workflow, { limit = 100 })
if extra == "trace" then
  for page in iterator, state, control do
    number, count = number + 1, count + #page.items
    local current, largest, halvings = walk:window()
    print(("page %d %.1f %d %d %d %d"):format(number, (core.now() - started) * 1000, #page.items,
      current, largest, halvings))
  end
else
  -- the peers' loop (bench/hosts/peers.lua), so that the hosts' own work is alike
  for run in iterator, state, control do
    if run.id then count = count + 1 end
  end
end
print(("%d %d %d %d"):format(count, walk:window()))
