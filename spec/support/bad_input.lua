-- What the specs of bad input share (spec/75-bad-input-*_spec.lua): what a call
-- raised, and the message a test reads from it.
--
--   local bad_input = require "spec.support.bad_input"
--   bad_input.raised_by(fn, ...)     -> what fn(...) raised; fails the test if it did not
--   bad_input.without_position(err)  -> an invalid_argument error's message, or a raised
--                                       string without its "file:line: "
local assert = require "luassert"

local M = {}

-- Misuse raises the invalid_argument error object; its message is what a test reads.
function M.without_position(err)
  if type(err) == "table" then
    assert.equal("invalid_argument", err.kind)
    return err.message
  end
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

function M.raised_by(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

return M
