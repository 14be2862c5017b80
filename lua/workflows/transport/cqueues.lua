--[[ The cqueues transport's registry entry: whether the running code is a coroutine a
cqueues controller runs (cq:wrap). The transport itself, libcurl's socket interface
driven from those coroutines, is workflows.transport.cqueues.driver, loaded with the
first one: code outside any controller asks only claims(), and a plain script does not
pay for loading the driver. ]]

local pcall, type, require = pcall, type, require

local M = {}

-- lua-cqueues, loaded on first use; false where it is not installed for this Lua.
local loaded
local package_loaded = package.loaded

function M.library()
  if loaded == nil then
    -- No controller runs before the program loaded lua-cqueues, and loading it costs
    -- as much as a tenth of a short walk: a program without it does not pay that.
    if not (package_loaded.cqueues or package_loaded._cqueues) then return false end
    local ok, module = pcall(require, "cqueues")
    loaded = ok and type(module) == "table" and type(module.running) == "function"
      and module or false
  end
  return loaded
end

M.names = { "curl" }   -- libcurl too, on the controller

-- Serves the coroutines a cqueues controller resumes itself. Cheap, and never fails:
-- a Lua without lua-cqueues is never inside a controller.
function M.claims()
  local cq = M.library()
  if not cq then return false end
  local controller, own = cq.running()
  return controller ~= nil and own == true
end

function M.found(client) return client.transports.cqueues end

-- The transport itself, made with the client's first one.
M.driver = "workflows.transport.cqueues.driver"

return M
