-- workflow_runs: list a workflow's runs in a scratch buffer without freezing the
-- editor. `:WorkflowRuns {id} [status]` opens the buffer and appends the runs as
-- their pages arrive, under a progress line; `<C-c>` or `:WorkflowRunsStop` stops
-- the walk, `q` stops it and closes the buffer.
--
--   require("workflow_runs").setup {
--     token = nil,       -- default: $WORKFLOWS_API_TOKEN
--     base_url = nil,    -- default: $WORKFLOWS_BASE_URL, else the library's default
--     library = nil,     -- the lua-workflows checkout (lua/ and build/luajit/); default:
--                        -- the one this plugin sits in (examples/nvim), if it does
--     page_size = 100,   -- runs per request
--     max = nil,         -- stop after this many runs
--     watch_interval = 10, -- seconds between two polls of :WorkflowWatch
--   }
-- luacheck: globals vim

local render = require "workflow_runs.render"

local api, fn = vim.api, vim.fn
local uv = vim.uv or vim.loop

local M = {}

local DEFAULTS = { page_size = 100, watch_interval = 10 }
local config = { page_size = DEFAULTS.page_size }
local client                  -- made on first use, after setup
local walks = {}              -- buffer number -> its walk: { task, id, status, runs, ... }

-- The lua-workflows checkout this plugin is part of (examples/nvim/lua/workflow_runs/),
-- or nil when it was copied elsewhere.
local function bundled_library()
  local source = debug.getinfo(1, "S").source:gsub("^@", "")
  local root = fn.fnamemodify(source, ":p:h:h:h:h:h")
  if fn.filereadable(root .. "/lua/workflows/init.lua") == 1 then return root end
  return nil
end

-- Puts the library's Lua files and its LuaJIT build of the core on the paths.
local function add_library(root)
  if not root then return end
  local lua_dir = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;"
  if not package.path:find(lua_dir, 1, true) then package.path = lua_dir .. package.path end
  local core = root .. "/build/luajit/?.so;"
  if not package.cpath:find(core, 1, true) then package.cpath = core .. package.cpath end
end

function M.setup(options)
  options = options or {}
  config = {}
  for key, value in pairs(DEFAULTS) do config[key] = value end
  for key, value in pairs(options) do config[key] = value end
  if client then
    client:close()
    client = nil
  end
  add_library(config.library or bundled_library())
end

-- The settings in force (a copy).
function M.config()
  local copy = {}
  for key, value in pairs(config) do copy[key] = value end
  return copy
end

-- Why the library did not load, in one line that says what to do: require's own
-- message lists every path it tried, twenty lines that bury the one fact that
-- matters. :checkhealth shows that whole message.
local function load_problem(message)
  local root = config.library or bundled_library() or "the lua-workflows checkout"
  if message:find("module 'workflows.core' not found", 1, true) then
    return ("the lua-workflows core is not built for LuaJIT: run `make LUA=luajit` in %s, "
      .. "then :checkhealth workflow_runs"):format(root)
  end
  -- found, but not loadable: another Lua's build, such as make's ./workflows/core.so
  -- for Lua 5.4 when Neovim runs in the checkout
  if message:find("'workflows.core'", 1, true) then
    return ("the lua-workflows core found is not one for LuaJIT: run `make LUA=luajit` in %s, "
      .. "then :checkhealth workflow_runs"):format(root)
  end
  if message:find("module 'workflows' not found", 1, true) then
    return 'lua-workflows is not on the paths: setup { library = "/path/to/lua-workflows" }, '
      .. "then :checkhealth workflow_runs"
  end
  return message:match("^[^\n]*") .. " (:checkhealth workflow_runs shows more)"
end

-- The library, or nil, why it cannot be loaded in one line, and require's message.
function M.library()
  if not config.library then add_library(bundled_library()) end
  local ok, workflows = pcall(require, "workflows")
  if not ok then
    -- LuaJIT leaves a marker behind a failed require, and every later require of the
    -- module would fail with "loop or previous error": without it, a core built
    -- meanwhile loads on the next try
    if type(package.loaded.workflows) ~= "table" then package.loaded.workflows = nil end
    return nil, load_problem(tostring(workflows)), tostring(workflows)
  end
  return workflows
end

-- Retries counted per walk, for the progress line. The client's events come inside
-- the task that waits for the answer, so the running coroutine tells whose walk it is.
local walk_of_task = setmetatable({}, { __mode = "k" })

local function count_retries(event)
  if event.type ~= "retry" then return end
  local walk = walk_of_task[coroutine.running()]
  if walk then walk.retries = walk.retries + 1 end
end

-- The plugin's client: one for every buffer, so walks share connections.
function M.client()
  if client then return client end
  local workflows, problem = M.library()
  if not workflows then return nil, problem end
  local made, made_or_err = pcall(workflows.new, {
    token = config.token,            -- nil: $WORKFLOWS_API_TOKEN
    base_url = config.base_url,      -- nil: $WORKFLOWS_BASE_URL
    loop = uv,
    on_event = count_retries,
  })
  if not made then return nil, tostring(made_or_err) end
  client = made_or_err
  return client
end

local function set_lines(buf, first, last, lines)
  vim.bo[buf].modifiable = true
  api.nvim_buf_set_lines(buf, first, last, false, lines)
  vim.bo[buf].modifiable = false
end

local function show_progress(walk)
  if api.nvim_buf_is_valid(walk.buf) then
    set_lines(walk.buf, 0, 1, { render.progress(walk) })
  end
end

-- Stops the walk of `buf` (default: the current buffer); true if one was running.
function M.stop(buf)
  if buf == nil or buf == 0 then buf = api.nvim_get_current_buf() end
  local walk = walks[buf]
  if not (walk and walk.task:running()) then return false end
  walk.task:cancel()
  return true
end

-- Stops every walk.
function M.stop_all()
  for buf in pairs(walks) do M.stop(buf) end
end

local function scratch_buffer(id, status, scheme)
  local buf = api.nvim_create_buf(false, true)
  local name = (scheme or "workflow-runs://") .. id .. (status and ("?status=" .. status) or "")
  pcall(api.nvim_buf_set_name, buf, name)
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].filetype = "workflowruns"
  local keymap = function(lhs, rhs)
    api.nvim_buf_set_keymap(buf, "n", lhs, rhs, { noremap = true, silent = true, nowait = true })
  end
  keymap("<C-c>", "<Cmd>lua require('workflow_runs').stop()<CR>")
  keymap("q", "<Cmd>lua require('workflow_runs').stop()<CR><Cmd>bwipeout<CR>")
  -- a wiped buffer takes its walk with it
  vim.cmd(("autocmd BufWipeout <buffer=%d> lua require('workflow_runs')._wiped(%d)"):format(buf, buf))
  return buf
end

function M._wiped(buf)
  M.stop(buf)
  walks[buf] = nil
end

-- For workflow_runs.watch: a scratch buffer of its own scheme, the buffer's lines, and
-- its watch kept where :WorkflowRunsStop, q and M.state find it.
M._scratch, M._set_lines = scratch_buffer, set_lines
function M._track(buf, watch) walks[buf] = watch end

-- Opens a buffer for the runs of workflow `id` (and `status`), walks them in a
-- task of the editor's loop and returns the buffer number.
function M.open(id, status)
  local the_client, problem = M.client()
  if not the_client then
    vim.notify("workflow_runs: " .. tostring(problem), vim.log.levels.ERROR)
    return nil
  end
  local buf = scratch_buffer(id, status)
  api.nvim_set_current_buf(buf)
  local walk = { buf = buf, id = id, status = status, runs = 0, pages = 0, retries = 0,
    state = "loading", started = uv.hrtime() }
  walks[buf] = walk
  set_lines(buf, 0, -1, { render.progress(walk), render.header() })

  local options = { status = status, limit = config.page_size, max = config.max }
  walk.task = the_client:spawn(function()
    walk_of_task[coroutine.running()] = walk
    -- the explicit loop: a Neovim built on PUC Lua 5.1 cannot wait in a for loop
    local next_page = the_client:pages(id, options)
    while true do
      local page = next_page()
      if page == nil then break end
      if not api.nvim_buf_is_valid(buf) then return end
      walk.pages, walk.runs = walk.pages + 1, walk.runs + #page.items
      set_lines(buf, -1, -1, render.lines(page.items))
      show_progress(walk)
    end
  end, function(ok, err)
    walk.seconds = (uv.hrtime() - walk.started) / 1e9
    if ok then walk.state = "done"
    elseif err and err.kind == "cancelled" then walk.state = "stopped"
    else walk.state, walk.err = "failed", err end
    show_progress(walk)
  end)
  return buf
end

-- The walk of `buf` as the buffer shows it (for specs and statuslines).
function M.state(buf)
  local walk = walks[buf or api.nvim_get_current_buf()]
  if not walk then return nil end
  return { id = walk.id, status = walk.status, runs = walk.runs, pages = walk.pages,
    retries = walk.retries, state = walk.state, err = walk.err and tostring(walk.err),
    added = walk.added, changed = walk.changed }
end

return M
