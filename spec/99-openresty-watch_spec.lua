-- examples/openresty's /watch as its nginx.conf says to run it (in a copy of the
-- checkout's layout, on a free port), against the sandbox: client:watch inside nginx,
-- on cosockets, as Server-Sent Events that end when the client goes away.
local cjson = require "cjson"
local nginx = require "spec.support.nginx"
local sandbox = require "spec.support.sandbox"
local cli = require "spec.support.cli"
local fixtures = require "spec.support.fixtures"

local available, why = nginx.available()
if not available then
  describe("examples/openresty /watch", function()
    pending("skipped: " .. why)
  end)
  return
end

local shell_quote = cli.shell_quote

local function succeeded(command)
  local status = os.execute(command)
  return status == true or status == 0
end

local function escaped(text)
  return (text:gsub("[^%w_.-]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- A directory laid out like the checkout, with the example's files and nginx.conf as
-- they are but for its port.
local function start_example(environment)
  local root = nginx.root()
  local top = os.tmpname()
  local example = shell_quote(top .. "/examples/openresty")
  assert(succeeded("rm -f " .. shell_quote(top) .. " && mkdir -p " .. example .. "/logs"
    .. " && ln -s " .. shell_quote(root .. "/lua") .. " " .. shell_quote(top .. "/lua")
    .. " && ln -s " .. shell_quote(root .. "/build") .. " " .. shell_quote(top .. "/build")
    .. " && ln -s " .. shell_quote(root .. "/examples/openresty/watch.lua") .. " " .. example))
  local conf_text = assert(cli.read_file(root .. "/examples/openresty/nginx.conf"))
  local server = nginx.start {
    prefix = top .. "/examples/openresty",
    conf = function(port)
      local conf, changed = conf_text:gsub("listen 127%.0%.0%.1:8081;", "listen 127.0.0.1:" .. port .. ";")
      assert(changed == 1, "nginx.conf no longer listens on 127.0.0.1:8081")
      return conf
    end,
    ready = "/ping",
    setenv = environment,
  }
  return server, top
end

-- The first `count` events of the stream at `path` and the headers; then the client
-- (curl) goes away.
local function stream(server, path, count)
  local headers = os.tmpname()
  local pipe = assert(io.popen("exec sh -c 'echo $$; exec curl -sN --max-time 20 -D \"$0\" \"$1\"' "
    .. shell_quote(headers) .. " " .. shell_quote(server.url .. path)))
  local pid = assert(tonumber(pipe:read("*l")))
  local events = {}
  while #events < count do
    local line = pipe:read("*l")
    if line == nil then break end
    if line ~= "" then
      events[#events + 1] = cjson.decode((assert(line:match("^data: (.*)$"), line)))
    end
  end
  os.execute("kill " .. pid .. " 2>/dev/null")
  pipe:close()
  local head = cli.read_file(headers) or ""
  os.remove(headers)
  return events, head
end

describe("examples/openresty /watch", function()
  local sb, server, top
  local suffix = fixtures.suffix_maker("openresty-watch")

  lazy_setup(function()
    sb = sandbox.start {}
    server, top = start_example({ WORKFLOWS_BASE_URL = sb.url, WORKFLOWS_API_TOKEN = sb.token })
  end)

  lazy_teardown(function()
    if server then server:stop() end
    if sb then sb:stop() end
    if top then os.execute("rm -rf " .. shell_quote(top)) end
  end)

  local function requests(id)
    return #fixtures.requests_for(sb, id, 0)
  end

  it("streams each arrival and each change as one data: line, and stops when the client goes away", function()
    local id = "wf_empty;every_ms=100;burst=2;ticks=3;finish_ms=150;" .. suffix()
    local events, head = stream(server, "/watch?interval=0.1&wf=" .. escaped(id), 12)
    assert.matches("^HTTP/1%.1 200", head)
    assert.matches("\r\nContent%-Type: text/event%-stream\r\n", head)
    local added, changed = {}, {}
    for _, event in ipairs(events) do
      if event.type == "added" then
        added[#added + 1] = event.run.id
      else
        assert.equal("changed", event.type)
        assert.equal("running", event.previous.status)
        assert.equal(cjson.null, event.previous.finishedAt)
        changed[#changed + 1] = event.run.id
      end
    end
    local arrived = sb:present(id)
    table.sort(arrived)
    table.sort(added)
    table.sort(changed)
    assert.same(arrived, added)
    assert.same(arrived, changed)
    -- gone: nginx ends the request once it notices, and the polls stop
    local seen, give_up = requests(id), os.time() + 5
    repeat
      local before = seen
      os.execute("sleep 0.3")
      seen = requests(id)
    until seen == before or os.time() > give_up
    os.execute("sleep 0.5")   -- five intervals: a watch still running would poll
    assert.equal(seen, requests(id))
    assert.not_matches("%[error%]", server:error_log())
  end)

  it("sends the runs in view first, as existing events", function()
    local events = stream(server, "/watch?wf=wf_demo&status=failure", 3)
    assert.equal(3, #events)
    for _, event in ipairs(events) do
      assert.equal("existing", event.type)
      assert.equal("failure", event.run.status)
    end
  end)

  it("answers a caller's mistake with 400 before the stream starts", function()
    local status, body, content_type = server:get("/watch?wf=wf_demo&interval=0.01")
    assert.same({ 400, "application/json" }, { status, content_type })
    assert.equal('workflows: invalid argument: option "interval" must be a number of seconds, '
      .. "at least 0.1 (got 0.01)", cjson.decode(body).error)
    status = server:get("/watch")
    assert.equal(400, status)
  end)

  it("ends the stream with an error event when the API fails", function()
    local status, body = server:get("/watch?wf=wf_missing", 10)
    assert.equal(200, status)
    local data = body:match("^event: error\ndata: (.-)\n\n$")
    local failure = cjson.decode((assert(data, body)))
    assert.same({ "http", 404 }, { failure.kind, failure.status })
  end)
end)
