-- lua-workflows: a client for the Workflows API run listing,
-- GET /v1/workflows/{id}/runs. The C core (workflows.core) moves bytes and
-- decodes JSON; this layer checks arguments, retries, and walks pages.

local core = require "workflows.core"
local options = require "workflows.options"
local errors = require "workflows.errors"
local request = require "workflows.request"
local pager = require "workflows.pager"
local retry = require "workflows.retry"

local setmetatable, error, format, floor = setmetatable, error, string.format, math.floor
local concat = table.concat
local getenv = os.getenv

local M = {}

M.VERSION = "0.1.0"
M.STATUSES = options.statuses()

local Client = {}
Client.__index = Client

local CLOSED = "the client is closed"

-- Each client's settings, token included, kept out of the client table itself
-- so that code which dumps tables cannot show the token.
local contexts = setmetatable({}, { __mode = "k" })

-- The context of `client`. Called straight from a method, so level 3 blames
-- the method's caller, who wrote client.method(...) instead of client:method(...).
local function context_of(client, method)
  local ctx = contexts[client]
  if not ctx then
    error(format("workflows: %s: self is not a workflows client (call it as client:%s(...))",
      method, method), 3)
  end
  return ctx
end

local function default_user_agent()
  return format("lua-workflows/%s libcurl/%s", M.VERSION, core.curl_version)
end

local clients_made = 0

-- Each client jitters on its own sequence, even two made in the same millisecond.
local function random_seed()
  clients_made = clients_made + 1
  return floor(core.time() * 1000) + floor(core.now() * 1e6) + clients_made * 7919
end

local function new_context(config)
  local ctx = {
    config = config,
    debug = getenv("WORKFLOWS_DEBUG") == "1",
    random = retry.random_source(random_seed()),
  }
  -- One session per client, made on first use, so every call and every walk
  -- rides on the same connections.
  function ctx.get_session()
    local session = ctx.session
    if not session then
      -- only a walk begun before client:close() can get here after it
      if ctx.closed then error(errors.invalid_argument(CLOSED), 0) end
      session = core.session()
      ctx.session = session
    end
    return session
  end
  return ctx
end

function M.new(given)
  local config, problem = options.client(given, getenv)
  if not config then error("workflows.new: " .. problem, 2) end
  if config.user_agent == nil then config.user_agent = default_user_agent() end
  local client = setmetatable({}, Client)
  contexts[client] = new_context(config)
  return client
end

local function runs_url(ctx, id)
  return ctx.config.base_url .. "/v1/workflows/" .. core.escape_segment(id) .. "/runs"
end

-- The query of list_runs: only what was given, always in the same order.
local function list_query(call)
  local parts = {}
  if call.limit then parts[#parts + 1] = format("limit=%d", call.limit) end
  if call.offset then parts[#parts + 1] = format("offset=%d", call.offset) end
  if call.status then parts[#parts + 1] = "status=" .. call.status end
  if #parts == 0 then return "" end
  return "?" .. concat(parts, "&")
end

-- One page: the page table, or nil and an error object. Bad arguments come
-- back as errors of kind "invalid_argument" too, before any request.
function Client:list_runs(id, given)
  local ctx = context_of(self, "list_runs")
  if ctx.closed then return nil, errors.invalid_argument(CLOSED) end
  local call, problem = options.list_call(id, given)
  if not call then return nil, errors.invalid_argument(problem) end
  problem = options.token_problem(ctx.config.token)
  if problem then return nil, errors.invalid_argument(problem) end
  local job = request.start(ctx, runs_url(ctx, id) .. list_query(call),
    call.deadline or ctx.config.deadline)
  request.await(job, { job })
  if job.err then return nil, job.err end
  return job.page
end

-- Shared by runs and pages: a for-loop's iterator, state, control and closing
-- value. Bad arguments raise the error object, as a loop cannot return it.
local function walk(ctx, mode, id, given)
  if ctx.closed then error(errors.invalid_argument(CLOSED), 0) end
  local call, problem = options.walk_call(id, given)
  if not call then error(errors.invalid_argument(problem), 0) end
  problem = options.token_problem(ctx.config.token)
  if problem then error(errors.invalid_argument(problem), 0) end
  local iterator, state = pager.walk {
    ctx = ctx,
    base = runs_url(ctx, id),
    mode = mode,
    status = call.status,
    limit = call.limit or options.DEFAULTS.walk_limit,
    offset = call.offset or 0,
    max = call.max,
    prefetch = ctx.config.prefetch,
    budget = ctx.config.deadline,
    expiry = call.deadline and core.now() + call.deadline,
  }
  return iterator, nil, nil, state
end

-- for run in client:runs(id, opts) do ... end
function Client:runs(id, given)
  local ctx = context_of(self, "runs")
  return walk(ctx, "runs", id, given)
end

-- for page in client:pages(id, opts) do ... end
function Client:pages(id, given)
  local ctx = context_of(self, "pages")
  return walk(ctx, "pages", id, given)
end

-- Transfers in flight on this client's connections, from every call and walk.
function Client:in_flight()
  local ctx = context_of(self, "in_flight")
  return ctx.session and ctx.session:running() or 0
end

-- Cancels everything in flight and closes the client's connections now, rather
-- than when the collector finds the client; later calls fail with "the client is
-- closed". Idempotent; also the client's closing value on Lua 5.4.
function Client:close()
  local ctx = context_of(self, "close")
  ctx.closed = true
  if ctx.session then
    ctx.session:close()
    ctx.session = nil
  end
end
Client.__close = Client.close

function Client:__tostring()
  local ctx = contexts[self]
  return format("workflows.client(%s)", ctx and ctx.config.base_url or "?")
end

return M
