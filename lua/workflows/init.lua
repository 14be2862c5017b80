-- lua-workflows: a client for the Workflows API run listing,
-- GET /v1/workflows/{id}/runs. The C core (workflows.core) moves bytes and
-- decodes JSON; this layer checks arguments, retries, and walks pages.
--
-- One rule for misuse: a bad argument or a misused call surfaces as the error
-- object with kind "invalid_argument". list_runs returns it (nil, err), as it
-- returns every failure; everything else raises it: workflows.new, the walks,
-- client:spawn and the methods called without `:`.

local core = require "workflows.core"
local options = require "workflows.options"
local errors = require "workflows.errors"
local request = require "workflows.request"
local pager = require "workflows.pager"
local retry = require "workflows.retry"
local transport = require "workflows.transport"
local proxy = require "workflows.proxy"
local budget = require "workflows.budget"

local setmetatable, getmetatable, error, type, pcall, require = setmetatable, getmetatable, error,
  type, pcall, require
local format, floor, min = string.format, math.floor, math.min
local getenv = os.getenv

local M = {}

M.VERSION = "0.2.0"
M.STATUSES = options.statuses()

local Client = {}
Client.__index = Client

local CLOSED = "the client is closed"

-- Each client's settings, token included, live here rather than in the client
-- table, so that nothing reachable from the client leads to the token.
local contexts = setmetatable({}, { __mode = "k" })

local function misuse(message)
  error(errors.invalid_argument(message), 0)
end

-- The context of `client`, called straight from a method named `method`.
local function context_of(client, method)
  local ctx = contexts[client]
  if not ctx then
    return nil, errors.invalid_argument(format(
      "client:%s: self is not a workflows client (call it as client:%s(...))", method, method))
  end
  return ctx
end

local function context_or_raise(client, method)
  local ctx, err = context_of(client, method)
  if not ctx then error(err, 0) end
  return ctx
end

-- Gives the client of `ctx` its events where something listens (`hook`: the on_event
-- option; WORKFLOWS_DEBUG=1): ctx.on_event takes every event, and ctx.events is
-- workflows.events for the emitters. Emitters build no event where nothing listens,
-- so such a client never loads workflows.events.
local function listen(ctx, hook)
  if not hook and not ctx.debug then return end
  ctx.events = require "workflows.events"
  ctx.on_event = ctx.events.dispatcher(ctx, hook, ctx.debug)
end

-- The "Name: value" lines of the headers option, or nil; workflows.production_options
-- is loaded only for a client given headers.
local function header_lines(headers)
  if headers == nil then return nil end
  return require("workflows.production_options").header_lines(headers)
end

-- The client certificate of the checked options: false when none of its options is
-- given (and workflows.identity is not loaded), or what workflows.identity.of says.
local function identity_of(config)
  if config.client_cert == nil and config.client_key == nil
      and config.client_key_password == nil then
    return false
  end
  return require("workflows.identity").of(config)
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

-- Releases what the client holds: tasks, transfers, connections, loop handles. A
-- task that closes its own client is not cancelled: it ends as its body does, and
-- its later calls fail with "the client is closed".
local function close_context(ctx)
  if ctx.closed then return end
  ctx.closed = true
  local tasks = ctx.tasks
  if tasks then tasks:cancel_all(errors.invalid_argument(CLOSED), tasks:running()) end
  transport.close_all(ctx)
end

-- workflows.tasks, loaded with the first task of any client.
local tasks_module

-- The client's tasks, made with its first one: a client that never spawns, calls
-- back or watches with on_event has none, and a program whose clients do none of
-- that never loads workflows.tasks.
local function tasks_of(ctx)
  local tasks = ctx.tasks
  if not tasks then
    tasks_module = tasks_module or require "workflows.tasks"
    tasks = tasks_module.registry(ctx.loop, function(task) transport.release_task(ctx, task) end)
    ctx.tasks = tasks
  end
  return tasks
end

-- The client was collected without client:close(). This runs in a finalizer, in
-- whatever code the collection interrupted, so it never calls the host: each transport
-- only queues its release for its own next turn (doc/lifecycle.md).
local function abandon_context(ctx)
  if ctx.closed then return end
  ctx.closed = true
  transport.abandon_all(ctx)
end

-- The guard does not reference the client, only what it must release; while a task
-- or a walk runs, it holds the client, so no finalizer runs under it.
local guards = setmetatable({}, { __mode = "k" })
local newproxy = newproxy  -- luacheck: ignore (Lua 5.1 and LuaJIT only)

local function collection_guard(ctx)
  local function on_collect() pcall(abandon_context, ctx) end
  if newproxy then
    local guard = newproxy(true)
    getmetatable(guard).__gc = on_collect
    return guard
  end
  return setmetatable({}, { __gc = on_collect })
end

-- The state shared by nginx's workers (nil without shared_dict) and the retry budget
-- (nil when turned off), which lives in the shared state when there is one.
local function shared_and_budget(config)
  local shared
  if config.shared_dict then
    local problem
    -- loaded here: only clients inside nginx with shared_dict need it
    shared, problem = require("workflows.shared").open(config.shared_dict, config.base_url)
    if not shared then misuse(problem) end
  end
  return shared, budget.for_client(config.retry_budget, shared, config.base_url)
end

function M.new(given)
  local config, problem = options.client(given, getenv)
  if not config then misuse(problem) end
  if config.user_agent == nil then config.user_agent = default_user_agent() end
  local route, route_problem = proxy.route(config, getenv)
  if route == nil then misuse(route_problem) end
  local client_identity, identity_problem = identity_of(config)
  if client_identity == nil then misuse(identity_problem) end
  --[[ The client's state, which each layer gets (doc/transport.md names what a
  transport reads of it):
    config         the checked options, defaults filled in (token included)
    token_problem  why the token cannot be sent, reported by every call; or nil
    debug          WORKFLOWS_DEBUG=1: one stderr line per attempt
    random         the retry jitter's source
    loop           the libuv binding, or nil
    tasks          the client's tasks (workflows.tasks), made with the first; nil before
    transports     name -> the client's own transport of that module, made on first use
    closed         client:close() ran, or the client was collected
    route          the proxy of every request (workflows.proxy), or false
    identity       the client certificate (workflows.identity), or false
    secrets        what no error or log line may show: the token, the proxy's password,
                   the key's (false where not set)
    on_event       takes every event, or nil when nothing listens
    events         workflows.events where something listens, else nil
    event_failures how often the on_event hook raised
    shared         the state shared by nginx's workers (workflows.shared), or nil
    budget         the retry budget (workflows.budget), or nil when turned off
    header_lines   the "Name: value" lines of the headers option, or nil ]]
  local ctx = {
    config = config,
    -- checked once here; reported by every call, since a missing token is
    -- not an error until a request is made
    token_problem = options.token_problem(config.token),
    debug = getenv("WORKFLOWS_DEBUG") == "1",
    random = retry.random_source(random_seed()),
    loop = config.loop,
    transports = {},
    closed = false,
    route = route,
    identity = client_identity,
    secrets = { config.token or false, route and route.password or false,
      config.client_key_password or false },
    header_lines = header_lines(config.headers),
    event_failures = 0,
  }
  listen(ctx, config.on_event)
  ctx.shared, ctx.budget = shared_and_budget(config)
  local client = setmetatable({}, Client)
  contexts[client] = ctx
  guards[client] = collection_guard(ctx)
  return client
end

local function list_page(ctx, id, given)
  if ctx.closed then return nil, errors.invalid_argument(CLOSED) end
  local call, problem = options.list_call(id, given)
  if not call then return nil, errors.invalid_argument(problem) end
  if ctx.token_problem then return nil, errors.invalid_argument(ctx.token_problem) end
  local config = ctx.config
  local job = request.start(ctx, transport.current(ctx), request.runs_url(config.base_url, id, call),
    request.deadline_in(call.deadline or config.deadline))
  transport.await(job, { job })
  if job.err then return nil, job.err end
  if ctx.on_event then ctx.events.page(ctx, job, job.page) end
  return job.page
end

-- One page: the page table, or nil and an error object. With `callback`, the
-- call runs as a task of the client's loop and hands its result to
-- callback(page, err); the task is returned (without a loop the call blocks and
-- calls back before returning).
function Client:list_runs(id, given, callback)
  local ctx, err = context_of(self, "list_runs")
  if not ctx then return nil, err end
  if callback == nil then
    -- not a tail call: `self` must stay alive until the page is in, or the
    -- collector could close the client under its own request
    local page, failure = list_page(ctx, id, given)
    return page, failure
  end
  if type(callback) ~= "function" then
    return nil, errors.invalid_argument(format("callback must be a function (got %s)",
      options.describe(callback)))
  end
  return tasks_of(ctx):spawn(self, function() callback(list_page(ctx, id, given)) end)
end

-- The checked options of a walk or a watch (`check` is options.walk_call or
-- watch_call); raises on misuse.
local function checked_iteration(ctx, check, id, given)
  if ctx.closed then misuse(CLOSED) end
  local call, problem = check(id, given)
  if not call then misuse(problem) end
  if ctx.token_problem then misuse(ctx.token_problem) end
  return call
end

-- function(offset, limit) -> the URL of that page of the listing of `id`.
local function listing_url(config, id, status)
  return function(offset, limit)
    return request.runs_url(config.base_url, id, { limit = limit, offset = offset, status = status })
  end
end

-- A for-loop's iterator, state, control and closing value, for runs and pages.
local function iterate(client, ctx, mode, id, given)
  local call = checked_iteration(ctx, options.walk_call, id, given)
  local config = ctx.config
  local iterator, walk = pager.walk {
    client = client,
    ctx = ctx,
    url_of = listing_url(config, id, call.status),
    mode = mode,
    limit = call.limit or options.DEFAULTS.walk_limit,
    offset = call.offset or 0,
    max = call.max,
    prefetch = config.prefetch,
    prefetch_cap = config.prefetch == "auto" and config.prefetch_cap or config.prefetch,
    page_deadline = config.deadline,
    deadline_at = request.deadline_in(call.deadline),
  }
  return iterator, nil, nil, walk
end

-- for run in client:runs(id, opts) do ... end
function Client:runs(id, given)
  return iterate(self, context_or_raise(self, "runs"), "runs", id, given)
end

-- for page in client:pages(id, opts) do ... end
function Client:pages(id, given)
  return iterate(self, context_or_raise(self, "pages"), "pages", id, given)
end

-- The iterator, state, control and closing value of a watch.
local function watch_iteration(client, ctx, id, given)
  local call = checked_iteration(ctx, options.watch_call, id, given)
  local config, defaults = ctx.config, options.DEFAULTS
  local horizon = call.horizon or defaults.watch_horizon
  -- loaded with the first watch: a program that only lists and walks does not pay for it
  local iterator, watch = require("workflows.watch").watch {
    client = client,
    ctx = ctx,
    url_of = listing_url(config, id, call.status),
    -- a view within one page costs one request per poll
    limit = call.limit or min(horizon, defaults.walk_limit),
    horizon = horizon,
    interval = call.interval or defaults.watch_interval,
    initial = call.initial == true,
    page_deadline = config.deadline,
    deadline_at = request.deadline_in(call.deadline),
  }
  return iterator, nil, nil, watch
end

-- for event in client:watch(id, opts) do ... end: new and changed runs as they
-- come. With `on_event`, the watch runs as a task of the client's loop (without a
-- loop it blocks until the watch ends) and the task is returned: on_event(event)
-- for each event (returning false ends the watch), then on_event(nil, err) once
-- when the watch ends by itself: its deadline (err nil) or an error.
function Client:watch(id, given, on_event)
  local ctx = context_or_raise(self, "watch")
  if on_event == nil then return watch_iteration(self, ctx, id, given) end
  if type(on_event) ~= "function" then
    misuse(format("client:watch: on_event must be a function (got %s)", options.describe(on_event)))
  end
  local iterator, _, _, watch = watch_iteration(self, ctx, id, given)
  local stopped = false
  -- a while loop, not a for loop: Lua 5.1 can yield from here, not from an iterator
  local function body()
    while true do
      local event = iterator()
      if event == nil then break end
      if on_event(event) == false then
        stopped = true
        break
      end
    end
    watch:close()
  end
  local function on_done(ok, err)
    watch:close()
    if stopped or (not ok and type(err) == "table" and err.kind == "cancelled") then return end
    on_event(nil, (not ok) and err or nil)
  end
  return tasks_of(ctx):spawn(self, body, on_done)
end

-- Runs `body` as a task on the client's loop: every wait inside it yields to the
-- loop. `on_done(ok, err)` is called once when it ends. Returns the task.
function Client:spawn(body, on_done)
  local ctx = context_or_raise(self, "spawn")
  if ctx.closed then misuse(CLOSED) end
  if type(body) ~= "function" then
    misuse(format("client:spawn: body must be a function (got %s)", options.describe(body)))
  end
  if on_done ~= nil and type(on_done) ~= "function" then
    misuse(format("client:spawn: on_done must be a function (got %s)", options.describe(on_done)))
  end
  if not ctx.loop then
    misuse("client:spawn needs a loop: workflows.new { loop = vim.uv or vim.loop or require \"luv\" }")
  end
  return tasks_of(ctx):spawn(self, body, on_done)
end

-- Transfers in flight on this client's connections, from every call and walk.
function Client:in_flight()
  return transport.in_flight(context_or_raise(self, "in_flight"))
end

-- How often the on_event hook raised (the first failure is also reported).
function Client:event_failures()
  return context_or_raise(self, "event_failures").event_failures
end

-- Cancels every task and transfer and closes the client's connections now,
-- rather than when the collector finds the client; later calls fail with "the
-- client is closed". Idempotent; also the client's closing value on Lua 5.4.
function Client:close()
  close_context(context_or_raise(self, "close"))
end
Client.__close = Client.close

function Client:__tostring()
  local ctx = contexts[self]
  return format("workflows.client(%s)", ctx and ctx.config.base_url or "?")
end

return M
