-- Walks every run with this client and says what its prefetch window did.
--
--   lua5.4 bench/walk_window.lua BASE_URL WORKFLOW TOKEN PREFETCH [trace]
--
-- PREFETCH is "auto" or a number. Prints one line:
--   RUNS CURRENT LARGEST HALVINGS
-- the runs walked, then walk:window() once the walk has ended: the window's size at
-- the end, the largest it reached, and how often the server made it halve.
-- With `trace`, walks page by page (client:pages, the same walk) and first prints a
-- line per page: "page N MS RUNS CURRENT LARGEST HALVINGS", MS the milliseconds
-- since the walk started, RUNS the runs the page brought, then walk:window() as
-- it stands once that page was handed out.
local workflows = require "workflows"
local core = require "workflows.core"

local base, workflow, token, prefetch, trace = arg[1], arg[2], arg[3], arg[4], arg[5] == "trace"
local options = { base_url = base, token = token }
if prefetch ~= "auto" then options.prefetch = assert(tonumber(prefetch), "PREFETCH") end
local client = workflows.new(options)

local count = 0
local walk
if trace then
  local started = core.now()
  local iterator, state, control
  iterator, state, control, walk = client:pages(workflow, { limit = 100 })
  local number = 0
  for page in iterator, state, control do
    number = number + 1
    count = count + #page.items
    local current, largest, halvings = walk:window()
    print(("page %d %.1f %d %d %d %d"):format(number, (core.now() - started) * 1000,
      #page.items, current, largest, halvings))
  end
else
  local iterator, state, control
  iterator, state, control, walk = client:runs(workflow, { limit = 100 })
  for run in iterator, state, control do
    if run.id then count = count + 1 end
  end
end
local current, largest, halvings = walk:window()
print(("%d %d %d %d"):format(count, current, largest, halvings))
