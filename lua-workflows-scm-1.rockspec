rockspec_format = "3.0"
package = "lua-workflows"
version = "scm-1"

source = {
  url = "git+https://github.com/lua-workflows/lua-workflows.git",
}

description = {
  summary = "Client for the Workflows API's run listing, on libcurl and lua-cjson",
  detailed = [[
    Lists the runs of a workflow (GET /v1/workflows/{id}/runs) with paging iterators,
    retries, deadlines and concurrent page prefetch. A C core does HTTP through
    libcurl's multi interface and decodes through lua-cjson; a small Lua layer gives
    the friendly surface.
  ]],
  homepage = "https://github.com/lua-workflows/lua-workflows",
  license = "MIT",
}

dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson >= 2.1.0",
  "argparse >= 0.7",
}

external_dependencies = {
  CURL = {
    header = "curl/curl.h",
    library = "curl",
  },
}

-- luarocks' "builtin" back-end would compile in the checkout: its workflows/core.so
-- would replace the one `make` built there, and src/*.o would stay behind.
-- mk/rock.mk compiles the core into the tree being installed instead; the Lua
-- modules are listed here, one by one, and install where builtin puts them.
build = {
  type = "make",
  makefile = "mk/rock.mk",
  build_pass = false,         -- the install pass compiles (mk/rock.mk says why)
  build_variables = { CFLAGS = "$(CFLAGS)" },
  install_target = "install",
  install_variables = {
    CC = "$(CC)",
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LIB_EXTENSION = "$(LIB_EXTENSION)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    CURL_INCDIR = "$(CURL_INCDIR)",
    CURL_LIBDIR = "$(CURL_LIBDIR)",
    LIBDIR = "$(LIBDIR)",
  },
  install = {
    lua = {
      ["workflows.init"] = "lua/workflows/init.lua",
      ["workflows.errors"] = "lua/workflows/errors.lua",
      ["workflows.handles"] = "lua/workflows/handles.lua",
      ["workflows.http1"] = "lua/workflows/http1.lua",
      ["workflows.ledger"] = "lua/workflows/ledger.lua",
      ["workflows.options"] = "lua/workflows/options.lua",
      ["workflows.proxy"] = "lua/workflows/proxy.lua",
      ["workflows.identity"] = "lua/workflows/identity.lua",
      ["workflows.pager"] = "lua/workflows/pager.lua",
      ["workflows.request"] = "lua/workflows/request.lua",
      ["workflows.retry"] = "lua/workflows/retry.lua",
      ["workflows.tasks"] = "lua/workflows/tasks.lua",
      ["workflows.watch"] = "lua/workflows/watch.lua",
      ["workflows.window"] = "lua/workflows/window.lua",
      ["workflows.events"] = "lua/workflows/events.lua",
      ["workflows.budget"] = "lua/workflows/budget.lua",
      ["workflows.shared"] = "lua/workflows/shared.lua",
      ["workflows.production_options"] = "lua/workflows/production_options.lua",
      ["workflows.transport.init"] = "lua/workflows/transport/init.lua",
      ["workflows.transport.curl"] = "lua/workflows/transport/curl.lua",
      ["workflows.transport.uv"] = "lua/workflows/transport/uv.lua",
      ["workflows.transport.uv.driver"] = "lua/workflows/transport/uv/driver.lua",
      ["workflows.transport.socket_session"] = "lua/workflows/transport/socket_session.lua",
      ["workflows.transport.cqueues"] = "lua/workflows/transport/cqueues.lua",
      ["workflows.transport.cqueues.driver"] = "lua/workflows/transport/cqueues/driver.lua",
      ["workflows.transport.ngx"] = "lua/workflows/transport/ngx.lua",
      ["workflows.transport.ngx.driver"] = "lua/workflows/transport/ngx/driver.lua",
      ["workflows.transport.ngx.exchange"] = "lua/workflows/transport/ngx/exchange.lua",
      ["workflows.transport.ngx.outcomes"] = "lua/workflows/transport/ngx/outcomes.lua",
      ["workflows.transport.ngx.network"] = "lua/workflows/transport/ngx/network.lua",
      ["workflows.cli.output"] = "lua/workflows/cli/output.lua",
      ["workflows.cli.watch"] = "lua/workflows/cli/watch.lua",
      ["workflows.cli.arguments"] = "lua/workflows/cli/arguments.lua",
    },
    bin = { workflows = "bin/workflows" },
  },
}
