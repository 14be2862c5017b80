-- Client certificates (mTLS) on every libcurl transport, against the sandbox's TLS mode
-- that requires a certificate signed by its own client CA: accepted with the key in the
-- clear and encrypted, refused without a certificate and with one of another CA; bad
-- files named at workflows.new. Inside nginx: spec/95-openresty-networks_spec.lua.
local sandbox = require "spec.support.sandbox"
local networks = require "spec.support.networks"
local workflows = require "workflows"

local call, list = networks.call, networks.list

describe("client certificates (" .. _VERSION .. ")", function()
  local sb
  lazy_setup(function() sb = sandbox.start { tls = true, client_ca = true } end)
  lazy_teardown(function() sb:stop() end)

  local function options(extra)
    local given = { base_url = sb.url, token = sb.token, ca_file = sb.cert }
    for key, value in pairs(extra) do given[key] = value end
    return given
  end

  local function api_requests(seq)
    local n = 0
    for _, entry in ipairs(sb:log(seq)) do
      if entry.path == "/v1/workflows/wf_demo/runs" then n = n + 1 end
    end
    return n
  end

  for _, transport in ipairs(networks.TRANSPORTS) do
    describe("on the " .. transport .. " transport", function()
      it("presents a certificate the server's CA signed", function()
        assert.same({ 2 }, { call(transport, options { client_cert = sb.client.cert,
          client_key = sb.client.key }, list) })
      end)

      it("decrypts an encrypted key with client_key_password", function()
        assert.same({ 2 }, { call(transport, options { client_cert = sb.client.cert,
          client_key = sb.client.key_encrypted, client_key_password = sb.client.key_password },
          list) })
      end)

      it("takes the key from client_cert's file when client_key is left out", function()
        local both = os.tmpname()
        local file = assert(io.open(both, "wb"))
        for _, path in ipairs { sb.client.cert, sb.client.key } do
          local part = assert(io.open(path, "rb"))
          file:write(part:read("*a"))
          part:close()
        end
        file:close()
        local n = call(transport, options { client_cert = both }, list)
        os.remove(both)
        assert.equal(2, n)
      end)

      it("fails with kind network when the server asks for a certificate it is not given", function()
        local seq = sb:last_seq()
        local n, err = call(transport, options {}, list)
        assert.is_nil(n)
        assert.same({ "network", 1 }, { err.kind, err.attempts })
        assert.equal(0, api_requests(seq))
      end)

      it("fails with kind network when the certificate is another CA's", function()
        local seq = sb:last_seq()
        local n, err = call(transport, options { client_cert = sb.client.stranger_cert,
          client_key = sb.client.stranger_key }, list)
        assert.is_nil(n)
        assert.same({ "network", 1 }, { err.kind, err.attempts })
        assert.equal(0, api_requests(seq))
      end)

      it("names both files when the key's password is wrong", function()
        local n, err = call(transport, options { client_cert = sb.client.cert,
          client_key = sb.client.key_encrypted, client_key_password = "not-the-passphrase",
          max_retries = 2 }, list)
        assert.is_nil(n)
        assert.same({ "network", 1, string.format('the client certificate could not be used: '
          .. 'client_cert %q, client_key %q (a wrong client_key_password, or a key that is '
          .. 'not the certificate\'s)', sb.client.cert, sb.client.key_encrypted) },
          { err.kind, err.attempts, err.message })
      end)
    end)
  end

  describe("workflows.new", function()
    local function problem(given)
      local ok, err = pcall(workflows.new, given)
      assert.is_false(ok)
      assert.equal("invalid_argument", err.kind)
      return err.message
    end

    it("names the option and the file that cannot be read", function()
      assert.equal('option "client_cert": "/nonexistent/cert.pem" is not readable '
        .. '(/nonexistent/cert.pem: No such file or directory)',
        problem { client_cert = "/nonexistent/cert.pem", client_key = sb.client.key })
    end)

    it("names a certificate file that holds no certificate", function()
      assert.equal(string.format('option "client_cert": %q is not a PEM certificate '
        .. '(no BEGIN CERTIFICATE line)', sb.client.key),
        problem { client_cert = sb.client.key, client_key = sb.client.key })
    end)

    it("names a key file that holds no key", function()
      assert.equal(string.format('option "client_key": %q is not a PEM private key '
        .. '(no BEGIN PRIVATE KEY line)', sb.client.cert),
        problem { client_cert = sb.client.cert, client_key = sb.client.cert })
    end)

    it("asks for the password of an encrypted key", function()
      assert.equal(string.format('option "client_key": %q is encrypted: pass its '
        .. 'client_key_password', sb.client.key_encrypted),
        problem { client_cert = sb.client.cert, client_key = sb.client.key_encrypted })
    end)

    it("wants client_cert with client_key", function()
      assert.equal('option "client_key" needs client_cert as well',
        problem { client_key = sb.client.key })
    end)
  end)
end)
