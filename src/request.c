/*
** Layer 2 (requests) -- may call: response.c
**
** One request: reading the Lua request table, the header list, and the easy handle's
** options, with the callbacks that collect the response into a wf_response. Also
** core.escape_segment, the one piece of URL building the Lua layer leaves to C.
*/
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "private.h"

/* ---------------------------------------------------------- reading the table */

static const char *opt_string_field(lua_State *L, int t, const char *key) {
  const char *value = NULL;
  int type = wf_getfield(L, t, key);
  if (type == LUA_TSTRING) value = lua_tostring(L, -1);
  else if (type != LUA_TNIL) luaL_error(L, "request field '%s' must be a string", key);
  lua_pop(L, 1);  /* the table still holds the string, so the pointer stays valid */
  return value;
}

static long opt_millis_field(lua_State *L, int t, const char *key) {
  long ms = 0;
  int type = wf_getfield(L, t, key);
  if (type == LUA_TNUMBER) {
    lua_Number seconds = lua_tonumber(L, -1);
    if (!(seconds > 0)) luaL_error(L, "request field '%s' must be positive", key);
    ms = seconds * 1000 >= (lua_Number)LONG_MAX ? LONG_MAX : (long)(seconds * 1000);
    if (ms < 1) ms = 1;
  } else if (type != LUA_TNIL) {
    luaL_error(L, "request field '%s' must be a number", key);
  }
  lua_pop(L, 1);
  return ms;
}

/*
** Checks the request field 'headers': nil, or an array of "Name: value" lines (the Lua
** layer checked names and values; this keeps a line break out whatever the caller).
*/
static void check_header_lines(lua_State *L, int t) {
  int type = wf_getfield(L, t, "headers");
  if (type == LUA_TTABLE) {
    lua_Integer i, n = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      size_t len;
      const char *line;
      if (wf_rawgeti(L, -1, (int)i) != LUA_TSTRING)
        luaL_error(L, "request field 'headers' must hold strings");
      line = lua_tolstring(L, -1, &len);
      if (strlen(line) != len || strpbrk(line, "\r\n") != NULL || strchr(line, ':') == NULL)
        luaL_error(L, "request field 'headers' holds a line that is not one header");
      lua_pop(L, 1);
    }
  } else if (type != LUA_TNIL) {
    luaL_error(L, "request field 'headers' must be a table");
  }
  lua_pop(L, 1);
}

/* The optional string fields of a request table, and where each goes in wf_request. */
static const struct string_field {
  const char *name;
  size_t offset;
} OPTIONAL_STRINGS[] = {
  { "token", offsetof(wf_request, token) },
  { "user_agent", offsetof(wf_request, user_agent) },
  { "ca_file", offsetof(wf_request, ca_file) },
  { "ca_path", offsetof(wf_request, ca_path) },
  { "proxy", offsetof(wf_request, proxy) },
  { "proxy_user", offsetof(wf_request, proxy_user) },
  { "proxy_password", offsetof(wf_request, proxy_password) },
  { "client_cert", offsetof(wf_request, client_cert) },
  { "client_key", offsetof(wf_request, client_key) },
  { "client_key_password", offsetof(wf_request, client_key_password) },
  { NULL, 0 }
};

/*
** Fills req from the request table at index t, raising for a missing url or a field
** of the wrong type. The strings stay owned by the table, which must outlive req.
*/
void wf_read_request(lua_State *L, int t, wf_request *req) {
  const struct string_field *field;
  int type;
  luaL_checktype(L, t, LUA_TTABLE);
  req->table = lua_absindex(L, t);
  check_header_lines(L, t);
  req->url = opt_string_field(L, t, "url");
  if (req->url == NULL) luaL_error(L, "request field 'url' is required");
  for (field = OPTIONAL_STRINGS; field->name != NULL; field++)
    *(const char **)((char *)req + field->offset) = opt_string_field(L, t, field->name);
  req->timeout_ms = opt_millis_field(L, t, "timeout");
  req->connect_timeout_ms = opt_millis_field(L, t, "connect_timeout");
  req->max_body = 0;
  type = wf_getfield(L, t, "max_body_bytes");
  if (type == LUA_TNUMBER) {
    lua_Number n = lua_tonumber(L, -1);
    if (!(n >= 1)) luaL_error(L, "request field 'max_body_bytes' must be at least 1");
    req->max_body = n >= (lua_Number)(SIZE_MAX / 2) ? SIZE_MAX / 2 : (size_t)n;
  } else if (type != LUA_TNIL) {
    luaL_error(L, "request field 'max_body_bytes' must be a number");
  }
  lua_pop(L, 1);
  if (req->token != NULL && strpbrk(req->token, "\r\n") != NULL)
    luaL_error(L, "the token must not contain line breaks");
}

/* ------------------------------------------------------- libcurl callbacks */
/* They only copy bytes: no Lua call may unwind through libcurl's frames. */

static size_t on_body(char *data, size_t size, size_t count, void *userdata) {
  wf_response *r = (wf_response *)userdata;
  size_t len = size * count;
  return wf_response_append(r, data, len) ? len : 0;
}

static size_t on_header(char *line, size_t size, size_t count, void *userdata) {
  wf_response *r = (wf_response *)userdata;
  size_t len = size * count;
  wf_response_header_line(r, line, len);
  return len;
}

/* ------------------------------------------------------------ set-up */

/*
** Builds the header list into *headers; returns 0 when an allocation failed (*headers
** then holds what was built, for its owner to free).
*/
int wf_build_headers(lua_State *L, struct curl_slist **headers, const wf_request *req) {
  struct curl_slist *grown = curl_slist_append(NULL, "Accept: application/json");
  lua_Integer i, n;
  if (grown == NULL) return 0;
  *headers = grown;
  if (req->token != NULL) {
    lua_pushfstring(L, "Authorization: Bearer %s", req->token);
    grown = curl_slist_append(*headers, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (grown == NULL) return 0;
    *headers = grown;
  }
  /* the extra headers, checked by wf_read_request; curl_slist_append copies each */
  if (wf_getfield(L, req->table, "headers") == LUA_TTABLE) {
    n = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, (int)i);
      grown = curl_slist_append(*headers, lua_tostring(L, -1));
      lua_pop(L, 1);
      if (grown == NULL) break;
      *headers = grown;
    }
  }
  lua_pop(L, 1);
  return grown != NULL;
}

#define SET(option, value) \
  if ((rc = curl_easy_setopt(easy, option, value)) != CURLE_OK) return rc

/*
** Sets every option of one attempt: the body and headers go into r, and owner becomes
** the handle's CURLINFO_PRIVATE. headers and r must outlive the attempt.
*/
CURLcode wf_set_options(CURL *easy, const wf_request *req, struct curl_slist *headers,
                        wf_response *r, void *owner) {
  CURLcode rc;
  SET(CURLOPT_URL, req->url);
  SET(CURLOPT_HTTPGET, 1L);
  SET(CURLOPT_HTTPHEADER, headers);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_FOLLOWLOCATION, 0L);            /* a redirect must not carry the token away */
#if LIBCURL_VERSION_NUM >= 0x075500
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
  SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  SET(CURLOPT_ACCEPT_ENCODING, "");           /* every encoding this libcurl decodes */
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  SET(CURLOPT_PIPEWAIT, 1L);                  /* wait to multiplex rather than open more */
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_WRITEDATA, r);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, r);
  SET(CURLOPT_ERRORBUFFER, r->error_text);
  SET(CURLOPT_PRIVATE, owner);
  if (req->user_agent != NULL) SET(CURLOPT_USERAGENT, req->user_agent);
  if (req->ca_file != NULL) SET(CURLOPT_CAINFO, req->ca_file);
  if (req->ca_path != NULL) SET(CURLOPT_CAPATH, req->ca_path);
  /* The Lua layer chose the proxy (workflows.proxy): "" keeps libcurl from reading
     the environment by a rule of its own. */
  SET(CURLOPT_PROXY, req->proxy != NULL ? req->proxy : "");
  SET(CURLOPT_NOPROXY, "");
  if (req->proxy != NULL) {
    SET(CURLOPT_PROXYTYPE, (long)CURLPROXY_HTTP);
    SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);  /* the proxy's head is not the answer's */
    if (req->proxy_user != NULL) {
      SET(CURLOPT_PROXYAUTH, (long)CURLAUTH_BASIC);
      SET(CURLOPT_PROXYUSERNAME, req->proxy_user);
      SET(CURLOPT_PROXYPASSWORD, req->proxy_password != NULL ? req->proxy_password : "");
    }
  }
  if (req->client_cert != NULL) {
    SET(CURLOPT_SSLCERTTYPE, "PEM");
    SET(CURLOPT_SSLCERT, req->client_cert);
    SET(CURLOPT_SSLKEYTYPE, "PEM");
    SET(CURLOPT_SSLKEY, req->client_key != NULL ? req->client_key : req->client_cert);
    if (req->client_key_password != NULL) SET(CURLOPT_KEYPASSWD, req->client_key_password);
  }
  if (req->timeout_ms > 0) SET(CURLOPT_TIMEOUT_MS, req->timeout_ms);
  if (req->connect_timeout_ms > 0) SET(CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
  if (req->max_body > 0) SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_body);
  return CURLE_OK;
}

#undef SET

/* ------------------------------------------------------------ URL segments */

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

/* Sets escape_segment in the module table at the top. */
int wf_request_open(lua_State *L) {
  lua_pushcfunction(L, core_escape_segment);
  lua_setfield(L, -2, "escape_segment");
  return 0;
}
