-- A watch's memory does not grow with the time it runs: what it remembers is bounded
-- by its horizon, however many runs go past. Polls at the shortest interval, on a
-- listing that gains more runs than the horizon before every answer (so every poll
-- reads past its horizon to catch up; pages of 100 hold each burst), with the
-- blocking client.
local fixtures = require "spec.support.fixtures"
local heap = require "spec.support.heap"

local HORIZON = 10
local ARRIVALS = 25   -- per request: each poll reads past the horizon to catch up
local FIRST, LAST = 5, 35

describe("client:watch() memory", function()
  local sb = fixtures.sandbox { client = { timeout = 5 } }
  local suffix = fixtures.suffix_maker("watch-memory")

  it("stays flat while runs stream past its horizon", function()
    local id = ("wf_empty;live=%d;%s"):format(ARRIVALS, suffix())
    local client = sb:new_client()
    local iterator, state, control, watch = client:watch(id,
      { horizon = HORIZON, limit = 100, interval = 0.1 })
    local added, at_first, at_last = 0, nil, nil
    for event in iterator, state, control do
      assert.equal("added", event.type)
      added = added + 1
      -- measured between polls, once each poll's events are all handed out
      if added == (FIRST - 1) * ARRIVALS then at_first = heap.used_kb() end
      if added == (LAST - 1) * ARRIVALS then
        at_last = heap.used_kb()
        break
      end
    end
    watch:close()
    client:close()
    -- every arrival came out once: no run was forgotten and then reported again
    assert.equal(LAST, watch:polls())
    assert.equal((LAST - 1) * ARRIVALS, added)
    -- a watch that kept its runs would hold 30 polls x 25 runs here (hundreds of KB)
    assert.is_true(at_last - at_first < 40, ("%.1f KB more after %d polls"):format(
      at_last - at_first, LAST - FIRST))
  end)
end)
