-- GET /failures?wf=WORKFLOW_ID[&limit=N]: the workflow's failed runs as NDJSON, one
-- run per line, sent page by page as the pages arrive. Runs in a content handler on
-- nginx's cosockets: the worker keeps serving other requests meanwhile.
-- luacheck: globals ngx
local workflows = require "workflows"
local cjson = require "cjson.safe"

local id = ngx.var.arg_wf
if id == nil or id == "" then
  ngx.status = ngx.HTTP_BAD_REQUEST
  ngx.say(cjson.encode { error = "missing ?wf=WORKFLOW_ID" })
  return
end
id = ngx.unescape_uri(id)

-- With lua_check_client_abort on: a client that goes away ends the request, and
-- nginx kills its light threads and closes their connections.
ngx.on_abort(function() ngx.exit(499) end)

local client = workflows.new {
  token = os.getenv "WORKFLOWS_API_TOKEN",
  base_url = os.getenv "WORKFLOWS_BASE_URL",
}

local sent_any = false
local ok, err = pcall(function()
  for page in client:pages(id, { status = "failure", limit = tonumber(ngx.var.arg_limit) }) do
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
if not ok then
  local failure = { error = tostring(err), kind = type(err) == "table" and err.kind or nil,
    status = type(err) == "table" and err.status or nil }
  if not sent_any then
    -- nothing sent yet: the status can still say it
    ngx.status = failure.kind == "invalid_argument" and 500
      or failure.status == 404 and 404 or ngx.HTTP_BAD_GATEWAY
    ngx.header["Content-Type"] = "application/json"
  end
  ngx.say(cjson.encode(failure))   -- after some runs: a last line that says why it stopped
end
