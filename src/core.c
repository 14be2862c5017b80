/*
** luaopen_workflows_core: the module table, the clocks, and the small pure helpers
** the Lua layer needs from C.
*/
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <time.h>

#include "private.h"

double wf_monotonic_seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

double wf_wall_seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static int core_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)wf_monotonic_seconds());
  return 1;
}

static int core_time(lua_State *L) {
  lua_pushnumber(L, (lua_Number)wf_wall_seconds());
  return 1;
}

/* core.sleep(seconds): nanosleep, resumed with what is left when a signal cuts it short. */
static int core_sleep(lua_State *L) {
  lua_Number seconds = luaL_checknumber(L, 1);
  struct timespec left;
  if (!(seconds > 0)) return 0;               /* also NaN */
  if (seconds > 1e9) seconds = 1e9;
  left.tv_sec = (time_t)seconds;
  left.tv_nsec = (long)((seconds - (lua_Number)left.tv_sec) * 1e9);
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
  return 0;
}

/*
** core.escape_segment(s): every byte but RFC 3986's unreserved ones as %XX. A segment
** of only "." or ".." has its dots encoded too: left bare, libcurl (and any proxy)
** would resolve it as a dot-segment and send the request to another path.
*/
static int core_escape_segment(lua_State *L) {
  static const char hex[] = "0123456789ABCDEF";
  size_t len, i;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  int dot_segment = (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.');
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (i = 0; i < len; i++) {
    unsigned char c = s[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        c == '-' || (c == '.' && !dot_segment) || c == '_' || c == '~') {
      luaL_addchar(&b, (char)c);
    } else {
      luaL_addchar(&b, '%');
      luaL_addchar(&b, hex[c >> 4]);
      luaL_addchar(&b, hex[c & 15]);
    }
  }
  luaL_pushresult(&b);
  return 1;
}

/* core.parse_http_date(s) -> seconds since the epoch, or nil */
static int core_parse_http_date(lua_State *L) {
  time_t date = curl_getdate(luaL_checkstring(L, 1), NULL);
  if (date == -1) return 0;
  lua_pushnumber(L, (lua_Number)date);
  return 1;
}

/* core.decode_page(body [, header_request_id]) -> page | nil, message */
static int core_decode_page(lua_State *L) {
  size_t len;
  const char *body = luaL_checklstring(L, 1, &len);
  const char *header_request_id = luaL_optstring(L, 2, NULL);
  if (wf_push_page(L, body, len, header_request_id)) return 1;
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

/* core.decode_envelope(body) -> { code, message, requestId } | nil */
static int core_decode_envelope(lua_State *L) {
  size_t len;
  const char *body = luaL_checklstring(L, 1, &len);
  return wf_push_envelope(L, body, len);
}

static const luaL_Reg core_functions[] = {
  { "now", core_now },
  { "time", core_time },
  { "sleep", core_sleep },
  { "escape_segment", core_escape_segment },
  { "parse_http_date", core_parse_http_date },
  { "decode_page", core_decode_page },
  { "decode_envelope", core_decode_envelope },
  { NULL, NULL }
};

/*
** libcurl's global state is set up once per process and never torn down: the module
** may be loaded into several Lua states, and any of them may outlive the others.
*/
static int init_curl_once(void) {
  static int initialised = 0;
  if (!initialised) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 0;
    initialised = 1;
  }
  return 1;
}

int luaopen_workflows_core(lua_State *L) {
  const curl_version_info_data *info;
  if (!init_curl_once()) return luaL_error(L, "curl_global_init failed");
  wf_decode_open(L);
  info = curl_version_info(CURLVERSION_NOW);
  luaL_newlib(L, core_functions);
  lua_pushstring(L, info->version);
  lua_setfield(L, -2, "curl_version");
  lua_pushboolean(L, (info->features & CURL_VERSION_HTTP2) != 0);
  lua_setfield(L, -2, "http2");
  wf_session_open(L);
  return 1;
}
