-- The verdicts of `make soak`: one line per check ("ok   host: property" or
-- "FAIL host: property: what was seen"), and the closing "N passed, M failed".
--
--   local checks = require "tools.soak.checks"
--   local host = checks.host("nginx")
--   host:check("no worker crashed", crashes == 0, crashes .. " 'exited on signal' lines")
--   host:note("12,345 requests")          -- a line of figures, not a check
--   os.exit(checks.finish())             -- prints the closing line; true when all passed

local M = {}

local passed, failed = 0, 0

local Host = {}
Host.__index = Host

function M.host(name)
  return setmetatable({ name = name }, Host)
end

-- `detail` is shown after a failure, and after a pass when `always` is set.
function Host:check(property, ok, detail, always)
  if ok then
    passed = passed + 1
    io.stdout:write("ok   ", self.name, ": ", property,
      (always and detail) and (" (" .. detail .. ")") or "", "\n")
  else
    failed = failed + 1
    io.stdout:write("FAIL ", self.name, ": ", property, detail and (": " .. detail) or "", "\n")
  end
  io.stdout:flush()
  return ok
end

function Host:note(text)
  io.stdout:write("     ", self.name, ": ", text, "\n")
  io.stdout:flush()
end

function M.counts()
  return passed, failed
end

function M.finish()
  io.stdout:write(passed, " passed, ", failed, " failed\n")
  return failed == 0
end

return M
