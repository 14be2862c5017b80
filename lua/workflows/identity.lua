-- The client certificate (mTLS) of a client: its files are checked once, when the
-- client is made, so that a wrong path or a key that needs a password fails there with
-- the option and the file named, in every transport alike. The files are read again
-- by whoever presents them (libcurl at each handshake; the nginx transport once per
-- worker).

local setmetatable = setmetatable
local format, find = string.format, string.find
local open = io.open

local M = {}

local function contents(path)
  local file, problem = open(path, "rb")
  if not file then return nil, problem end
  local text = file:read("*a")
  file:close()
  return text or ""
end

local function is_encrypted(pem)
  return find(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----", 1, true) ~= nil
    or find(pem, "Proc-Type: 4,ENCRYPTED", 1, true) ~= nil
end

-- The password stays out of every printed form of the identity.
local Identity = {}
Identity.__index = Identity
function Identity.__tostring(identity) return "workflows.identity(" .. identity.cert .. ")" end

local function file_problem(option, path, what, reason)
  return format('option "%s": %q is not %s (%s)', option, path, what, reason)
end

-- The identity { cert, key, password, encrypted } of the checked options, false when
-- none is configured, or nil and a message naming the option and the file.
function M.of(config)
  local cert, key, password = config.client_cert, config.client_key, config.client_key_password
  if cert == nil then
    if key ~= nil then return nil, 'option "client_key" needs client_cert as well' end
    if password ~= nil then
      return nil, 'option "client_key_password" needs client_cert and client_key as well'
    end
    return false
  end
  local cert_pem, problem = contents(cert)
  if not cert_pem then return nil, file_problem("client_cert", cert, "readable", problem) end
  if not find(cert_pem, "-----BEGIN CERTIFICATE-----", 1, true) then
    return nil, file_problem("client_cert", cert, "a PEM certificate", "no BEGIN CERTIFICATE line")
  end
  local key_option = key and "client_key" or "client_cert"
  key = key or cert
  local key_pem = cert_pem
  if key ~= cert then
    key_pem, problem = contents(key)
    if not key_pem then return nil, file_problem(key_option, key, "readable", problem) end
  end
  if not find(key_pem, "-----BEGIN [%u ]*PRIVATE KEY-----") then
    return nil, file_problem(key_option, key, "a PEM private key", "no BEGIN PRIVATE KEY line")
  end
  local encrypted = is_encrypted(key_pem)
  if encrypted and password == nil then
    return nil, format('option "%s": %q is encrypted: pass its client_key_password', key_option, key)
  end
  return setmetatable({ cert = cert, key = key, password = password, encrypted = encrypted },
    Identity)
end

-- What a failure to use the identity (or a table { cert, key }) reads as, in every
-- transport; also identity:unusable(), for code that did not load this module.
function M.unusable(identity)
  return format('the client certificate could not be used: client_cert %q, client_key %q '
    .. '(a wrong client_key_password, or a key that is not the certificate\'s)',
    identity.cert, identity.key)
end
Identity.unusable = M.unusable

return M
