/*
** Layer 5 (the module) -- may call: session.c, transfer.c, request.c, response.c,
** decode.c, ids.c, clock.c
**
** luaopen_workflows_core: the module table. Each file registers its own functions
** and metatables through its *_open, lowest layer first; this one only says which
** libcurl it got. session.c sets libcurl up when the first session is made.
*/
#include "private.h"
#include "session.h"
#include "transfer.h"

int luaopen_workflows_core(lua_State *L) {
  const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
  lua_newtable(L);
  lua_pushstring(L, info->version);
  lua_setfield(L, -2, "curl_version");
  lua_pushboolean(L, (info->features & CURL_VERSION_HTTP2) != 0);
  lua_setfield(L, -2, "http2");
  wf_clock_open(L);
  wf_decode_open(L);
  wf_ids_open(L);
  wf_response_open(L);
  wf_request_open(L);
  wf_transfer_open(L);
  wf_session_open(L);
  return 1;
}
