-- GET /failures?wf=WORKFLOW_ID[&limit=N]: the workflow's failed runs as NDJSON, one
-- run per line, sent page by page as the pages arrive. Runs in a content handler on
-- nginx's cosockets: the worker keeps serving other requests meanwhile.
--
-- A failure before the first run is answered with a status of its own and a JSON
-- body, {"error": "<the error's line>", "kind": "...", "status": <the API's HTTP
-- status, for kind "http" only>}:
--   400  the caller's mistake: no ?wf=, a ?limit= that is not an integer in 1..100
--        (in the library's words)
--   404  the API does not know the workflow
--   502  any other answer of the API, or the network to it failed
--   504  the API did not answer in time
--   500  this server is not set up: nginx passes no WORKFLOWS_API_TOKEN on
-- After some runs, the status is sent already: a last line, the same JSON, says why
-- the stream stopped.
-- luacheck: globals ngx
local workflows = require "workflows"
local cjson = require "cjson.safe"

local function failure_of(err)
  if type(err) ~= "table" then return { error = tostring(err) } end
  return { error = tostring(err), kind = err.kind, status = err.status }
end

local function answer(status, failure)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(failure))
end

-- The status that tells the caller what failed, for an error before the first run.
local function status_of(err)
  if type(err) ~= "table" then return ngx.HTTP_INTERNAL_SERVER_ERROR end
  if err.kind == "http" and err.status == 404 then return ngx.HTTP_NOT_FOUND end
  if err.kind == "timeout" then return ngx.HTTP_GATEWAY_TIMEOUT end
  if err.kind == "http" or err.kind == "network" or err.kind == "decode" then
    return ngx.HTTP_BAD_GATEWAY
  end
  return ngx.HTTP_INTERNAL_SERVER_ERROR
end

local id = ngx.var.arg_wf
if id == nil or id == "" then
  return answer(ngx.HTTP_BAD_REQUEST, { error = "missing ?wf=WORKFLOW_ID", kind = "invalid_argument" })
end
id = ngx.unescape_uri(id)

-- A ?limit= that is no number goes to the library as the text it is, so that the
-- library's check, which names the option and the value, rejects it too.
local limit = ngx.var.arg_limit
if limit ~= nil then limit = tonumber(limit) or ngx.unescape_uri(limit) end

-- The library reads the token and the base URL from the environment (nginx.conf's
-- `env` lines pass them on). A missing token is this server's fault, not the
-- caller's, so it is told apart before the walk checks the caller's parameters.
if (os.getenv "WORKFLOWS_API_TOKEN" or "") == "" then
  return answer(ngx.HTTP_INTERNAL_SERVER_ERROR, { error = "WORKFLOWS_API_TOKEN is not set for "
    .. "nginx: start nginx with it in its environment (nginx.conf passes it on with `env`)" })
end
-- on_event feeds /metrics (metrics.lua); shared_dict makes the retry budget and
-- Retry-After pauses one for every worker, and for every request's client
local made, client = pcall(workflows.new, { on_event = require("metrics").on_event,
  shared_dict = "workflows" })
if not made then return answer(ngx.HTTP_INTERNAL_SERVER_ERROR, failure_of(client)) end

-- With lua_check_client_abort on: a client that goes away ends the request, and
-- nginx kills its light threads and closes their connections.
ngx.on_abort(function() ngx.exit(499) end)

-- The walk checks its parameters as it starts, before any request: what it raises
-- then is the caller's mistake.
local started, iterator, state, control, walk = pcall(client.pages, client, id,
  { status = "failure", limit = limit })
if not started then
  local err = iterator
  local mistake = type(err) == "table" and err.kind == "invalid_argument"
  return answer(mistake and ngx.HTTP_BAD_REQUEST or ngx.HTTP_INTERNAL_SERVER_ERROR, failure_of(err))
end

local sent_any = false
local ok, err = pcall(function()
  for page in iterator, state, control do
    if not sent_any then
      ngx.header["Content-Type"] = "application/x-ndjson"
      sent_any = true
    end
    local lines = {}
    for i, run in ipairs(page.items) do lines[i] = cjson.encode(run) end
    if #lines > 0 then ngx.print(table.concat(lines, "\n"), "\n") end
    if not ngx.flush(true) then return end  -- the client is gone
  end
end)
-- LuaJIT has no closing values: this stops the pages still in flight at once
walk:close()
if not ok then
  if sent_any then
    ngx.say(cjson.encode(failure_of(err)))
  else
    answer(status_of(err), failure_of(err))
  end
end
