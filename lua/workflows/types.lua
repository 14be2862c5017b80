---@meta workflows
-- LuaLS (lua-language-server) annotations for the public API, for completion and
-- type checks in editors: add lua-workflows' lua/ directory to the server's
-- `workspace.library` (Neovim: see the README). Nothing here is meant to run or
-- to be required.
-- luacheck: ignore (stubs: unused arguments and methods that do nothing)

---@alias workflows.Status "running"|"success"|"failure"|"waiting"|"cancelled"

---@alias workflows.ErrorKind "invalid_argument"|"http"|"network"|"timeout"|"decode"|"cancelled"

---A libuv binding: vim.uv, vim.loop, or require "luv".
---@alias workflows.Loop table

---Which transport carries a client's calls: "auto" takes cosockets inside nginx and
---libcurl elsewhere; "ngx" cosockets or a failure; "curl" libcurl even inside nginx.
---@alias workflows.Transport "auto"|"ngx"|"curl"

---@class workflows.Options
---@field token? string bearer token; default `$WORKFLOWS_API_TOKEN`
---@field base_url? string default `$WORKFLOWS_BASE_URL` or "https://api.example.com"
---@field timeout? number seconds for one whole request attempt (default 30)
---@field connect_timeout? number seconds to connect (default 10)
---@field max_retries? integer extra attempts after a retryable failure (default 2)
---@field deadline? number seconds for one call with all its retries; nil: none
---@field prefetch? integer|"auto" pages requested ahead while iterating: "auto" (default) sizes the window itself, 0 turns it off
---@field prefetch_cap? integer the most pages "auto" keeps ahead (default 8)
---@field loop? workflows.Loop calls inside `client:spawn` tasks then never block it
---@field user_agent? string default "lua-workflows/<VERSION> libcurl/<version>"
---@field ca_file? string PEM bundle of a private CA
---@field ca_path? string directory of CA certificates
---@field max_body_bytes? integer a larger response fails (default 32 MiB)
---@field transport? workflows.Transport "auto" (default); "curl" inside nginx blocks the worker for each call
---@field pool_size? integer inside nginx: kept-alive connections per scheme, host and port in each worker (default 30)
---@field pool_idle_timeout? number inside nginx: seconds an idle kept-alive connection stays in the pool (default 60)
---@field proxy? string|false "http://[user:pass@]host:port"; false: none whatever the environment says; default: https_proxy/HTTPS_PROXY, http_proxy, all_proxy/ALL_PROXY
---@field no_proxy? string[]|string hosts, domain suffixes and addresses reached without the proxy; default: no_proxy/NO_PROXY
---@field client_cert? string PEM file of a client certificate (mTLS)
---@field client_key? string PEM file of its key (default: client_cert)
---@field client_key_password? string the password of an encrypted client_key
---@field on_event? fun(event: workflows.Event) called with one table per event (metrics, tracing)
---@field headers? table<string, string> extra request headers (traceparent, tracestate, ...); never Authorization, Host or the client's own
---@field retry_budget? boolean|workflows.RetryBudget on (true, default) or off (false), or its numbers
---@field shared_dict? string inside nginx: a lua_shared_dict shared by every worker (retry budget, Retry-After pauses, the window's back-off)
---@field transfer_thread? boolean the blocking transport moves its transfers on a thread of its own (default true)

---The retry budget: a retry costs a token, each success puts `ratio` back.
---@class workflows.RetryBudget
---@field ratio? number tokens a success puts back, 0..1 (default 0.2: retries at most 20% of successes)
---@field reserve? number tokens at the start and at most (default 10)

---@alias workflows.EventType "attempt_start"|"attempt"|"retry"|"page"|"window"|"budget"

---One event (`on_event`); which fields are set depends on `type`. Never the token.
---@class workflows.Event
---@field type workflows.EventType
---@field method? string "GET" (attempt_start, attempt)
---@field url? string the request's URL (attempt_start, attempt, retry, page, budget)
---@field attempt? integer the attempt's number within its call (attempt_start, attempt, retry, budget)
---@field transport? string "curl", "libuv", "cqueues" or "ngx" (attempt_start, attempt)
---@field status? integer the HTTP status, when one came (attempt)
---@field kind? string "ok", or the error kind (attempt)
---@field elapsed? number seconds from request to answer (attempt)
---@field bytes? integer body bytes received (attempt)
---@field request_id? string (attempt, page)
---@field reused? boolean the connection was reused (attempt)
---@field window? integer the walk's prefetch window when the attempt started (attempt_start, attempt)
---@field delay? number seconds before the retry (retry)
---@field why? string why: the status or kind retried (retry, budget); "grow", "pace", "pushback" or "shared_pushback" (window)
---@field retry_after? number seconds the server asked for (retry)
---@field offset? integer (page)
---@field items? integer runs in the page (page)
---@field limit? integer (page)
---@field has_more? boolean (page)
---@field attempts? integer requests the page took (page)
---@field from? integer window size before (window)
---@field to? integer window size after (window)
---@field tokens? number tokens left in the budget (budget)
---@field reserve? number the budget's reserve (budget)
---@field ratio? number the budget's ratio (budget)
---@field shared? boolean the budget lives in a lua_shared_dict (budget)

---@class workflows.ListOptions
---@field status? workflows.Status
---@field limit? integer 1..100 (server default 20)
---@field offset? integer >= 0
---@field deadline? number seconds for this call with its retries

---@class workflows.WalkOptions
---@field status? workflows.Status
---@field limit? integer page size, 1..100 (default 100)
---@field offset? integer where the walk begins
---@field max? integer stop after this many runs (`runs`) or pages (`pages`)
---@field deadline? number seconds for the whole walk

---@class workflows.WatchOptions
---@field status? workflows.Status
---@field limit? integer page size, 1..100 (default: horizon, at most 100)
---@field interval? number seconds between polls, at least 0.1 (default 10), less a small jitter
---@field horizon? integer runs from the head kept in view, 1..10000 (default 100)
---@field initial? boolean report the runs in view at the start as "existing" (default false)
---@field deadline? number seconds after which the watch ends

---@alias workflows.WatchEventType "added"|"changed"|"existing"

---One event of a watch.
---@class workflows.WatchEvent
---@field type workflows.WatchEventType
---@field run workflows.Run the run as the poll found it
---@field previous? table "changed": the old values of the fields that changed
---@field fields? string[] "changed": the names of the fields that changed (an old value may be nil)

---One run, with the API's field names; a JSON null is an absent field.
---@class workflows.Run
---@field id? string
---@field workflowId? string
---@field workflowVersion? integer
---@field status? workflows.Status
---@field startedAt? string ISO 8601
---@field finishedAt? string ISO 8601
---@field totalCu? number
---@field triggerSource? string
---@field triggeredBy? string
---@field sourceRunId? string
---@field isSimulation? boolean
---@field isDustTest? boolean

---@class workflows.Page
---@field items workflows.Run[]
---@field hasMore boolean
---@field limit integer
---@field offset integer
---@field requestId? string

---Every failure. `tostring(err)` gives one line; the token never appears in it.
---@class workflows.Error
---@field kind workflows.ErrorKind
---@field status? integer HTTP status
---@field code? integer the error envelope's `code`
---@field message? string
---@field requestId? string
---@field attempts integer requests made
---@field retry_after? number seconds the server asked to wait, beyond what the client waits

---A walk's closing value (the fourth value of `runs` and `pages`).
---@class workflows.Walk
local Walk = {}

---Releases what the walk has in flight; idempotent.
function Walk:close() end

---The prefetch window: its size now, the largest it reached, and how often the
---server made it halve (always 0 for a fixed prefetch).
---@return integer size
---@return integer largest
---@return integer halvings
function Walk:window() end

---A watch's closing value (the fourth value of `client:watch`).
---@class workflows.Watch
local Watch = {}

---Ends the watch; idempotent.
function Watch:close() end

---Polls made so far.
---@return integer
function Watch:polls() end

---A coroutine of the client's loop (`client:spawn`, the callback form of `list_runs`).
---@class workflows.Task
local Task = {}

---Stops the task and releases all it has in flight; its `on_done` gets
---`(false, err)` with `err.kind == "cancelled"`. Idempotent; safe from inside the
---task's own body and callbacks.
function Task:cancel() end

---true until the task has ended (finished, failed or cancelled).
---@return boolean
function Task:running() end

---@class workflows.Client
local Client = {}

---One page. With `callback`, the call runs as a task of the client's loop and the
---task is returned; `callback(page, err)` is called once (without a loop the call
---blocks and calls back before returning).
---@param workflow_id string
---@param options? workflows.ListOptions
---@return workflows.Page? page
---@return workflows.Error? err
---@overload fun(self: workflows.Client, workflow_id: string, options: workflows.ListOptions?, callback: fun(page: workflows.Page?, err: workflows.Error?)): workflows.Task?, workflows.Error?
function Client:list_runs(workflow_id, options) end

---Every run, page after page: `for run in client:runs(id, opts) do ... end`.
---A failure is raised as a `workflows.Error`.
---@param workflow_id string
---@param options? workflows.WalkOptions
---@return fun(): workflows.Run? iterator
---@return nil
---@return nil
---@return workflows.Walk walk
function Client:runs(workflow_id, options) end

---The same walk a page at a time: `for page in client:pages(id, opts) do ... end`.
---@param workflow_id string
---@param options? workflows.WalkOptions
---@return fun(): workflows.Page? iterator
---@return nil
---@return nil
---@return workflows.Walk walk
function Client:pages(workflow_id, options) end

---New and changed runs as they happen: `for event in client:watch(id, opts) do ... end`.
---It never ends by itself: `break`, `close()`, `deadline` or an error ends it. With
---`on_event`, it runs as a task of the client's loop (without a loop it blocks until
---it ends) and the task is returned: `on_event(event)` for each event (returning false
---ends the watch), then `on_event(nil, err)` once if it ends by its deadline or an error.
---@param workflow_id string
---@param options? workflows.WatchOptions
---@return fun(): workflows.WatchEvent? iterator
---@return nil
---@return nil
---@return workflows.Watch watch
---@overload fun(self: workflows.Client, workflow_id: string, options: workflows.WatchOptions?, on_event: fun(event: workflows.WatchEvent?, err: workflows.Error?): boolean?): workflows.Task
function Client:watch(workflow_id, options) end

---Runs `body` as a coroutine of the client's loop: every wait inside it yields to
---the loop. `on_done(ok, err)` is called once when it ends. Needs `loop`.
---@param body fun()
---@param on_done? fun(ok: boolean, err: workflows.Error|any)
---@return workflows.Task
function Client:spawn(body, on_done) end

---Transfers in flight on this client's connections.
---@return integer
function Client:in_flight() end

---How often the on_event hook raised an error (the first one is also reported).
---@return integer
function Client:event_failures() end

---Cancels every task and transfer and closes the connections; idempotent.
function Client:close() end

---@class workflows
---@field VERSION string "MAJOR.MINOR.PATCH"
---@field STATUSES workflows.Status[]
local workflows = {}

---Makes a client; raises on a bad option.
---@param options? workflows.Options
---@return workflows.Client
function workflows.new(options) end

return workflows
