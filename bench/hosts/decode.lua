-- Decodes one page body N times, for counting instructions under callgrind:
--
--   valgrind --tool=callgrind lua5.4 bench/hosts/decode.lua MODE N BODY_FILE
--
-- MODE "core": the client's decode path, workflows.core.decode_page(body), which
-- parses with lua-cjson and then checks the page's shape, drops JSON nulls and
-- turns integral numbers into integers. MODE "cjson": a bare cjson.decode(body).
-- MODE "baseline": everything the other two do (start Lua, load both modules, read
-- the body, run the loop) except the decoding, so that
--   (instructions(MODE) - instructions(baseline)) / N
-- is the cost of one decode. bench/scenarios/walk.lua does that subtraction.
-- MODE "time" (not under valgrind): CPU microseconds per decode of each, N decodes
-- in alternating blocks so that both see the same machine; prints
-- "time_cjson<TAB>us<TAB>1" and "time_core<TAB>us<TAB>1".
local core = require "workflows.core"
local cjson = require "cjson"

local mode, n, path = arg[1], tonumber(arg[2]), arg[3]
local file = assert(io.open(path, "rb"))
local body = file:read "a"
file:close()

if mode == "time" then
  local spent = { cjson = 0, core = 0 }
  local decoders = { cjson = cjson.decode, core = core.decode_page }
  local block = 100
  for _ = 1, math.max(1, n // block) do
    for _, name in ipairs { "cjson", "core" } do
      local fn = decoders[name]
      local started = os.clock()
      for _ = 1, block do fn(body) end
      spent[name] = spent[name] + os.clock() - started
    end
  end
  local blocks = math.max(1, n // block)
  for _, name in ipairs { "cjson", "core" } do
    print(("time_%s\t%.1f\t1"):format(name, spent[name] / (blocks * block) * 1e6))
  end
  os.exit(0)
end

local decode
if mode == "core" then
  decode = core.decode_page
elseif mode == "cjson" then
  decode = cjson.decode
elseif mode == "baseline" then
  decode = function(text) return text end
else
  error("MODE must be core, cjson or baseline")
end

-- Both decoders once in every mode (so the subtraction cancels them): both must
-- see a full page.
assert(#core.decode_page(body).items == 100, "expected a 100-run page")
assert(#cjson.decode(body).data.items == 100, "expected a 100-run page")

for _ = 1, n do
  decode(body)
end
