-- Runs bin/workflows as a subprocess for the specs, with the Lua interpreter that
-- runs busted (so that each Lua of `make test` runs the command on its own core,
-- which bin/workflows finds under build/<lua>/ or ./ in the checkout).
--
--   local cli = require "spec.support.cli"
--   local result = cli.run({ "runs", "wf_demo", "--format", "csv" }, { env = { ... } })
--   result.stdout, result.stderr, result.code, result.ms
--
-- options: env (table of variables; false unsets one), stdin (text), pipe (a shell
-- command that reads the output, e.g. "head -1"; result.stdout is then its
-- output), sigpipe_ignored (run with SIGPIPE ignored), pty (run under `script`,
-- stdout redirected to a file unless pty_stdout), interrupt_after (seconds,
-- then SIGINT), cwd (the directory to run it in; give `command` an absolute path).

local M = {}

local function shell_quote(text)
  return "'" .. tostring(text):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

local function read_file(path)
  local file = io.open(path, "rb")
  if not file then return nil end
  local content = file:read("*a")
  file:close()
  return content
end
M.read_file = read_file

local function write_file(path, text)
  local file = assert(io.open(path, "wb"))
  file:write(text)
  file:close()
end
M.write_file = write_file

-- The repository root as seen from this file ("" when loaded relative to it).
local function root_dir()
  local source = debug.getinfo(1, "S").source
  return source:match("^@(.-)spec[/\\]support[/\\]cli%.lua$") or ""
end
M.root = root_dir()

-- The interpreter busted runs on: the lowest negative index of `arg`.
function M.interpreter()
  local i = 0
  while arg and arg[i - 1] ~= nil do i = i - 1 end
  return arg and arg[i] or "lua5.4"
end

-- Runs the Lua `source` in a fresh interpreter of the Lua running busted, with this
-- process's package.path and package.cpath, after the shell words `prefix` (e.g.
-- "env -u NAME"; optional). Returns its stdout, its stderr and its exit status.
function M.run_lua(source, prefix)
  local script, err_path = os.tmpname(), os.tmpname()
  write_file(script, ("package.path = %q\npackage.cpath = %q\n"):format(package.path,
    package.cpath) .. source .. "\n")
  local pipe = assert(io.popen(table.concat({ prefix or "", shell_quote(M.interpreter()),
    shell_quote(script), "2>" .. shell_quote(err_path), "; echo \"exit=$?\"" }, " ")))
  local out = pipe:read("*a")
  pipe:close()
  local stderr = read_file(err_path) or ""
  os.remove(script)
  os.remove(err_path)
  local status = tonumber(out:match("exit=(%d+)\n$"))
  return (out:gsub("exit=%d+\n$", "")), stderr, status
end

-- The Lua this process is: "lua5.4", "lua5.1", "luajit", ...
function M.lua_name()
  if rawget(_G, "jit") then return "luajit" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

-- Variables that would change what the command does, unset unless a test sets them.
local CLEARED = { "WORKFLOWS_API_TOKEN", "WORKFLOWS_BASE_URL", "WORKFLOWS_DEBUG", "NO_COLOR" }

local function env_prefix(env)
  local parts = { "env" }
  for _, name in ipairs(CLEARED) do
    if env[name] == nil then parts[#parts + 1] = "-u " .. name end
  end
  local names = {}
  for name in pairs(env) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    if env[name] == false then
      parts[#parts + 1] = "-u " .. name
    else
      parts[#parts + 1] = name .. "=" .. shell_quote(env[name])
    end
  end
  return table.concat(parts, " ")
end

-- The command line of bin/workflows (or `command`, an installed one) with `args`.
function M.command_line(args, options)
  options = options or {}
  local words = { env_prefix(options.env or {}) }
  if options.command then
    words[#words + 1] = shell_quote(options.command)
  else
    words[#words + 1] = shell_quote(M.interpreter())
    words[#words + 1] = shell_quote(M.root .. "bin/workflows")
  end
  for _, word in ipairs(args) do words[#words + 1] = shell_quote(word) end
  return table.concat(words, " ")
end

-- Runs the command; returns { stdout, stderr, code, ms }.
function M.run(args, options)
  options = options or {}
  local out, err, rc, script = os.tmpname(), os.tmpname(), os.tmpname(), os.tmpname()
  local line = M.command_line(args, options)
  local body
  if options.pty then
    -- script(1) gives the command a terminal; what the terminal shows is the
    -- "stderr" here, and stdout goes to a file unless the test wants it on the pty.
    local inner = line .. (options.pty_stdout and "" or (" >" .. shell_quote(out)))
      .. "; echo $? >" .. shell_quote(rc)
    body = "script -qec " .. shell_quote(inner) .. " /dev/null >" .. shell_quote(err)
      .. " 2>&1 </dev/null"
    if options.pty_stdout then body = body .. "; cp " .. shell_quote(err) .. " " .. shell_quote(out) end
  elseif options.interrupt_after then
    body = line .. " >" .. shell_quote(out) .. " 2>" .. shell_quote(err) .. " & pid=$!; sleep "
      .. options.interrupt_after .. "; kill -INT $pid; wait $pid; echo $? >" .. shell_quote(rc)
  elseif options.pipe then
    body = "{ " .. line .. " 2>" .. shell_quote(err) .. "; echo $? >" .. shell_quote(rc)
      .. "; } | " .. options.pipe .. " >" .. shell_quote(out)
  else
    body = line .. " >" .. shell_quote(out) .. " 2>" .. shell_quote(err)
      .. "; echo $? >" .. shell_quote(rc)
  end
  if options.sigpipe_ignored then body = "trap '' PIPE; " .. body end
  if options.cwd then body = "cd " .. shell_quote(options.cwd) .. " || exit; " .. body end
  if options.stdin then
    local input = os.tmpname()
    write_file(input, options.stdin)
    body = "exec <" .. shell_quote(input) .. "; " .. body
  elseif not options.pty then
    body = "exec </dev/null; " .. body
  end
  write_file(script, "start=$(date +%s%N)\n" .. body .. "\nend=$(date +%s%N)\n"
    .. "echo $(( (end - start) / 1000000 ))\n")
  local pipe = assert(io.popen("sh " .. shell_quote(script)))
  local ms = tonumber(pipe:read("*a"):match("(%d+)%s*$"))
  pipe:close()
  local result = {
    stdout = read_file(out) or "",
    stderr = read_file(err) or "",
    code = tonumber((read_file(rc) or ""):match("%d+")),
    ms = ms,
  }
  for _, path in ipairs { out, err, rc, script } do os.remove(path) end
  return result
end

-- Lines of `text` (without their "\n").
function M.lines(text)
  local lines = {}
  for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
end

-- RFC 4180 records of `text`: a list of lists of fields.
function M.parse_csv(text)
  local records, record, field, i, n = {}, {}, {}, 1, #text
  local quoted = false
  while i <= n do
    local c = text:sub(i, i)
    if quoted then
      if c == '"' then
        if text:sub(i + 1, i + 1) == '"' then
          field[#field + 1] = '"'
          i = i + 1
        else
          quoted = false
        end
      else
        field[#field + 1] = c
      end
    elseif c == '"' then
      quoted = true
    elseif c == "," then
      record[#record + 1] = table.concat(field)
      field = {}
    elseif c == "\n" then
      record[#record + 1] = table.concat(field)
      records[#records + 1] = record
      record, field = {}, {}
    elseif c ~= "\r" then
      field[#field + 1] = c
    end
    i = i + 1
  end
  if #field > 0 or #record > 0 then
    record[#record + 1] = table.concat(field)
    records[#records + 1] = record
  end
  return records
end

return M
