-- Prefetched pages multiplexed over HTTP/2: nginx terminates TLS with HTTP/2 in front
-- of the static server at 20 ms (which speaks only HTTP/1.1), the client walks wf_big
-- with prefetch 0, 2 and 7, and nginx's log tells how many connections each walk used
-- and which protocol it spoke.
local nginx = require "spec.support.nginx"

local format = string.format

local M = { about = "prefetched pages multiplexed on one HTTP/2 connection (nginx in front)" }

function M.run(lib)
  local available, why = nginx.available()
  if not available then return { "## HTTP/2", "", "skipped: " .. why, "" } end
  local server = lib.static(lib.pages "wf_big:20000", 20)
  local cert, key, log = lib.work .. "/cert.pem", lib.work .. "/key.pem", lib.work .. "/access.log"
  lib.run(format("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
    .. "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s 2>/dev/null", key, cert))
  local port = lib.output [[python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])']]
  local front = nginx.start { log_level = "warn", http = format([[
    log_format walk '$connection $server_protocol';
    upstream api { server %s; keepalive 16; }
    server {
      listen 127.0.0.1:%s ssl http2;
      access_log %s walk;
      ssl_certificate %s;
      ssl_certificate_key %s;
      location / { proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }]], server.url:gsub("^http://", ""), port, log, cert, key) }
  local cells = {}
  local ok, problem = pcall(function()
    for _, prefetch in ipairs { "0", "2", "7" } do
      lib.write(log, "")
      local t0 = lib.now()
      local printed = lib.output(format("%slua5.4 bench/hosts/walk.lua https://127.0.0.1:%s wf_big %s %s %s",
        lib.CLIENT_ENV:gsub("WORKFLOWS_DEBUG=1 ", ""), port, lib.TOKEN, prefetch, cert))
      local wall = lib.now() - t0
      lib.sleep(0.2)  -- nginx logs a request when its stream ends
      local connections, count, protocols = {}, 0, {}
      for connection, protocol in lib.read(log):gmatch "(%d+) (%S+)" do
        if not connections[connection] then connections[connection], count = true, count + 1 end
        protocols[#protocols + 1] = protocol
      end
      cells[#cells + 1] = { prefetch, printed:match "^%d+", lib.ms(wall) .. " ms", count, lib.spread(protocols) }
    end
  end)
  front:stop()
  if not ok then error(problem, 0) end
  local out = { "## HTTP/2", "", "`wf_big` through nginx (TLS, HTTP/2) in front of the static server at 20 ms, "
    .. "one walk each:", "" }
  return lib.append(out, lib.table({ "prefetch", "runs", "wall", "connections", "<protocol" }, cells), "")
end

return M
