-- One walk of wf_big for bench/http2.sh: prints "RUNS SECONDS".
--   lua5.4 bench/http2_walk.lua BASE_URL CA_FILE PREFETCH
local workflows = require "workflows"
local core = require "workflows.core"

local client = workflows.new { base_url = arg[1], token = "sandbox-token", ca_file = arg[2],
                               prefetch = tonumber(arg[3]) }
local started, count = core.now(), 0
for _ in client:runs("wf_big") do count = count + 1 end
io.write(string.format("%d %.2f", count, core.now() - started))
