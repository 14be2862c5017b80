/*
** Layer 5 (the module) -- may call: session.c, transfer.c, request.c, response.c,
** decode.c, clock.c
**
** luaopen_workflows_core: the module table. Each file registers its own functions
** and metatables through its *_open, lowest layer first; this one only says which
** libcurl it got. session.c sets libcurl up when the first session is made.
*/
#include "private.h"
#include "session.h"
#include "transfer.h"

/*
** core.new_table(narray, nhash): an empty table with room for that many elements, as
** LuaJIT's table.new: a set that is known to grow to thousands of keys is made once
** at its size instead of being rehashed at every power of two on the way.
*/
static int core_new_table(lua_State *L) {
  lua_Integer narray = luaL_checkinteger(L, 1), nhash = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, narray >= 0 && narray <= 1 << 24, 1, "out of range");
  luaL_argcheck(L, nhash >= 0 && nhash <= 1 << 24, 2, "out of range");
  lua_createtable(L, (int)narray, (int)nhash);
  return 1;
}

int luaopen_workflows_core(lua_State *L) {
  const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
  lua_newtable(L);
  lua_pushstring(L, info->version);
  lua_setfield(L, -2, "curl_version");
  lua_pushboolean(L, (info->features & CURL_VERSION_HTTP2) != 0);
  lua_setfield(L, -2, "http2");
  lua_pushcfunction(L, core_new_table);
  lua_setfield(L, -2, "new_table");
  wf_clock_open(L);
  wf_decode_open(L);
  wf_response_open(L);
  wf_request_open(L);
  wf_transfer_open(L);
  wf_session_open(L);
  return 1;
}
