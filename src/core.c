/*
** luaopen_workflows_core: the module table. Each file registers its own functions
** and metatables through its *_open; this one only sets up libcurl and says which
** libcurl it got.
*/
#include "private.h"

/*
** libcurl's global state (and with it the TLS library's) is set up once per process,
** when the first session is made rather than when the module loads: inside nginx the
** cosocket transport never makes one, and loading the core there opens nothing. It is
** never torn down: the module may be loaded into several Lua states, and any of them
** may outlive the others.
*/
void wf_require_curl(lua_State *L) {
  static int initialised = 0;
  if (!initialised) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      luaL_error(L, "curl_global_init failed");
    initialised = 1;
  }
}

int luaopen_workflows_core(lua_State *L) {
  const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
  lua_newtable(L);
  lua_pushstring(L, info->version);
  lua_setfield(L, -2, "curl_version");
  lua_pushboolean(L, (info->features & CURL_VERSION_HTTP2) != 0);
  lua_setfield(L, -2, "http2");
  wf_clock_open(L);
  wf_decode_open(L);
  wf_response_open(L);
  wf_request_open(L);
  wf_transfer_open(L);
  wf_session_open(L);
  wf_socket_open(L);
  return 1;
}
