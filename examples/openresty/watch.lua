-- GET /watch?wf=WORKFLOW_ID[&status=S][&interval=SECONDS]: a workflow's new and changed
-- runs as Server-Sent Events (text/event-stream), one `data:` line per event, the
-- event as client:watch gives it: {"type":"added"|"changed"|"existing","run":{...},
-- "previous":{...}}. The runs in view come first, as "existing" events. The stream
-- never ends by itself: it ends when the client goes away, which nginx notices
-- (lua_check_client_abort on), and the request's cosockets and timers end with it.
--
-- A caller's mistake (no ?wf=, a bad status or interval) is answered 400 with a JSON
-- body, {"error": "...", "kind": "invalid_argument"}, before the stream starts; a
-- failure of the API or the network afterwards is a last event, `event: error`, whose
-- data is {"error": "<the error's line>", "kind": "...", "status": ...}.
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

local id = ngx.var.arg_wf
if id == nil or id == "" then
  return answer(ngx.HTTP_BAD_REQUEST, { error = "missing ?wf=WORKFLOW_ID", kind = "invalid_argument" })
end
id = ngx.unescape_uri(id)
local status = ngx.var.arg_status and ngx.unescape_uri(ngx.var.arg_status)
-- what is no number goes to the library as the text it is, which it then rejects by name
local interval = ngx.var.arg_interval
if interval ~= nil then interval = tonumber(interval) or ngx.unescape_uri(interval) end

if (os.getenv "WORKFLOWS_API_TOKEN" or "") == "" then
  return answer(ngx.HTTP_INTERNAL_SERVER_ERROR, { error = "WORKFLOWS_API_TOKEN is not set for "
    .. "nginx: start nginx with it in its environment (nginx.conf passes it on with `env`)" })
end
local made, client = pcall(workflows.new, {})
if not made then return answer(ngx.HTTP_INTERNAL_SERVER_ERROR, failure_of(client)) end

-- the watch checks its options as it is made, before any request
local started, iterator, state, control, watch = pcall(client.watch, client, id,
  { status = status, interval = interval, initial = true })
if not started then
  local err = iterator
  local mistake = type(err) == "table" and err.kind == "invalid_argument"
  return answer(mistake and ngx.HTTP_BAD_REQUEST or ngx.HTTP_INTERNAL_SERVER_ERROR, failure_of(err))
end

-- A client that goes away ends the request: nginx ends its light threads and closes
-- their connections, and the sleep between two polls with them.
ngx.on_abort(function() ngx.exit(499) end)

ngx.header["Content-Type"] = "text/event-stream"
ngx.header["Cache-Control"] = "no-cache"
ngx.send_headers()
ngx.flush(true)

local ok, err = pcall(function()
  for event in iterator, state, control do
    local data = { type = event.type, run = event.run }
    if event.previous then
      -- an old value that was absent is a null, so that every changed field is named
      data.previous = {}
      for _, name in ipairs(event.fields) do
        local old = event.previous[name]
        if old == nil then old = cjson.null end
        data.previous[name] = old
      end
    end
    ngx.print("data: ", cjson.encode(data), "\n\n")
    if not ngx.flush(true) then return end  -- the client is gone
  end
end)
-- LuaJIT has no closing values: this ends the watch at once
watch:close()
if not ok then
  ngx.print("event: error\ndata: ", cjson.encode(failure_of(err)), "\n\n")
  ngx.flush(true)
end
