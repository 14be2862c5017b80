/*
** Sessions and transfers: libcurl's multi interface, bound so that the caller drives.
**
** A session owns one multi handle (and with it the connection cache, so that every
** request of a client reuses connections) and a few idle easy handles. A transfer is
** one request in flight. Nothing here blocks except session:drive, and only for as
** long as it is told, so the same code serves a blocking walk today and an outside
** event loop later.
*/
#define _POSIX_C_SOURCE 200809L

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "private.h"

#define IDLE_HANDLES 8

typedef struct wf_transfer wf_transfer;

typedef struct wf_session {
  CURLM *multi;                  /* NULL once closed */
  wf_transfer *transfers;        /* every transfer still attached, running or done */
  int running;
  int idle_count;
  CURL *idle[IDLE_HANDLES];
} wf_session;

enum transfer_state { RUNNING, DONE, CANCELLED };

struct wf_transfer {
  wf_session *session;           /* NULL once detached */
  CURL *easy;                    /* NULL once the attempt is over */
  struct curl_slist *headers;
  enum transfer_state state;
  int session_ref;               /* keeps the session alive while this lives */
  int outcome_ref;               /* the outcome table, built once */
  wf_transfer *prev, *next;
  wf_response response;
};

/* ---------------------------------------------------------------- helpers */

static wf_session *check_session(lua_State *L, int i) {
  wf_session *s = (wf_session *)luaL_checkudata(L, i, WF_SESSION_TYPE);
  if (s->multi == NULL) luaL_error(L, "attempt to use a closed session");
  return s;
}

static wf_transfer *check_transfer(lua_State *L, int i) {
  return (wf_transfer *)luaL_checkudata(L, i, WF_TRANSFER_TYPE);
}

static CURL *take_easy(wf_session *s) {
  if (s->idle_count > 0) return s->idle[--s->idle_count];
  return curl_easy_init();
}

/* The multi handle keeps the connections; an easy handle is only worth its allocation. */
static void give_back_easy(wf_session *s, CURL *easy) {
  if (s != NULL && s->idle_count < IDLE_HANDLES) {
    curl_easy_reset(easy);
    s->idle[s->idle_count++] = easy;
  } else {
    curl_easy_cleanup(easy);
  }
}

static void link_transfer(wf_session *s, wf_transfer *t) {
  t->session = s;
  t->prev = NULL;
  t->next = s->transfers;
  if (s->transfers != NULL) s->transfers->prev = t;
  s->transfers = t;
}

static void unlink_transfer(wf_transfer *t) {
  wf_session *s = t->session;
  if (s == NULL) return;
  if (t->prev != NULL) t->prev->next = t->next;
  else s->transfers = t->next;
  if (t->next != NULL) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  t->session = NULL;
}

/*
** Ends the attempt's use of libcurl: takes the easy handle out of the multi handle
** (aborting it if it was still running, which closes its connection) and frees the
** request headers. The response stays.
*/
static void end_attempt(wf_transfer *t) {
  wf_session *s = t->session;
  if (t->easy != NULL) {
    if (s != NULL && s->multi != NULL) {
      curl_multi_remove_handle(s->multi, t->easy);
      give_back_easy(s, t->easy);
    } else {
      curl_easy_cleanup(t->easy);
    }
    t->easy = NULL;
  }
  if (t->state == RUNNING && s != NULL) s->running--;
  curl_slist_free_all(t->headers);
  t->headers = NULL;
}

/* Idempotent: close, __gc and __close all come here. */
static void release_transfer(lua_State *L, wf_transfer *t) {
  end_attempt(t);
  unlink_transfer(t);
  t->state = CANCELLED;
  wf_response_free(&t->response);
  luaL_unref(L, LUA_REGISTRYINDEX, t->outcome_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, t->session_ref);
  t->outcome_ref = t->session_ref = LUA_NOREF;
}

/* ------------------------------------------------------- libcurl callbacks */
/* They only copy bytes: no Lua call may unwind through libcurl's frames. */

static size_t on_body(char *data, size_t size, size_t count, void *userdata) {
  wf_transfer *t = (wf_transfer *)userdata;
  size_t len = size * count;
  return wf_response_append(&t->response, data, len) ? len : 0;
}

static size_t on_header(char *line, size_t size, size_t count, void *userdata) {
  wf_transfer *t = (wf_transfer *)userdata;
  size_t len = size * count;
  wf_response_header_line(&t->response, line, len);
  return len;
}

/* ------------------------------------------------------------ request set-up */

typedef struct request_spec {
  const char *url;
  const char *token;
  const char *user_agent;
  const char *ca_file;
  const char *ca_path;
  long timeout_ms;
  long connect_timeout_ms;
  size_t max_body;
} request_spec;

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

static void read_request_spec(lua_State *L, int t, request_spec *spec) {
  int type;
  luaL_checktype(L, t, LUA_TTABLE);
  spec->url = opt_string_field(L, t, "url");
  if (spec->url == NULL) luaL_error(L, "request field 'url' is required");
  spec->token = opt_string_field(L, t, "token");
  spec->user_agent = opt_string_field(L, t, "user_agent");
  spec->ca_file = opt_string_field(L, t, "ca_file");
  spec->ca_path = opt_string_field(L, t, "ca_path");
  spec->timeout_ms = opt_millis_field(L, t, "timeout");
  spec->connect_timeout_ms = opt_millis_field(L, t, "connect_timeout");
  spec->max_body = 0;
  type = wf_getfield(L, t, "max_body_bytes");
  if (type == LUA_TNUMBER) {
    lua_Number n = lua_tonumber(L, -1);
    if (!(n >= 1)) luaL_error(L, "request field 'max_body_bytes' must be at least 1");
    spec->max_body = n >= (lua_Number)(SIZE_MAX / 2) ? SIZE_MAX / 2 : (size_t)n;
  } else if (type != LUA_TNIL) {
    luaL_error(L, "request field 'max_body_bytes' must be a number");
  }
  lua_pop(L, 1);
  if (spec->token != NULL && strpbrk(spec->token, "\r\n") != NULL)
    luaL_error(L, "the token must not contain line breaks");
}

#define SET(option, value) \
  if ((rc = curl_easy_setopt(easy, option, value)) != CURLE_OK) return rc

static CURLcode set_options(CURL *easy, wf_transfer *t, const request_spec *spec) {
  CURLcode rc;
  SET(CURLOPT_URL, spec->url);
  SET(CURLOPT_HTTPGET, 1L);
  SET(CURLOPT_HTTPHEADER, t->headers);
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
  SET(CURLOPT_WRITEDATA, t);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, t);
  SET(CURLOPT_ERRORBUFFER, t->response.error_text);
  SET(CURLOPT_PRIVATE, t);
  if (spec->user_agent != NULL) SET(CURLOPT_USERAGENT, spec->user_agent);
  if (spec->ca_file != NULL) SET(CURLOPT_CAINFO, spec->ca_file);
  if (spec->ca_path != NULL) SET(CURLOPT_CAPATH, spec->ca_path);
  if (spec->timeout_ms > 0) SET(CURLOPT_TIMEOUT_MS, spec->timeout_ms);
  if (spec->connect_timeout_ms > 0) SET(CURLOPT_CONNECTTIMEOUT_MS, spec->connect_timeout_ms);
  if (spec->max_body > 0) SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)spec->max_body);
  return CURLE_OK;
}

#undef SET

/* Builds the header list; returns 0 when an allocation failed. */
static int build_headers(lua_State *L, wf_transfer *t, const char *token) {
  struct curl_slist *grown = curl_slist_append(NULL, "Accept: application/json");
  if (grown == NULL) return 0;
  t->headers = grown;
  if (token != NULL) {
    lua_pushfstring(L, "Authorization: Bearer %s", token);
    grown = curl_slist_append(t->headers, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (grown == NULL) return 0;
    t->headers = grown;
  }
  return 1;
}

/* ------------------------------------------------------------ session methods */

/*
** session:start(request) -> transfer. The transfer is created closed-first (zeroed,
** with its metatable) so that a failure half-way leaves an object __gc can free.
*/
static int session_start(lua_State *L) {
  wf_session *s = check_session(L, 1);
  request_spec spec;
  wf_transfer *t;
  CURLcode rc;
  CURLMcode mrc;

  read_request_spec(L, 2, &spec);
  t = (wf_transfer *)wf_newuserdata(L, sizeof *t);
  memset(t, 0, sizeof *t);
  t->state = CANCELLED;
  t->session_ref = t->outcome_ref = LUA_NOREF;
  luaL_setmetatable(L, WF_TRANSFER_TYPE);
  wf_response_init(&t->response, spec.max_body);

  if (!build_headers(L, t, spec.token)) return luaL_error(L, "out of memory");
  t->easy = take_easy(s);
  if (t->easy == NULL) return luaL_error(L, "curl_easy_init failed");
  rc = set_options(t->easy, t, &spec);
  if (rc != CURLE_OK)
    return luaL_error(L, "cannot set up the request: %s", curl_easy_strerror(rc));
  link_transfer(s, t);
  mrc = curl_multi_add_handle(s->multi, t->easy);
  if (mrc != CURLM_OK) {
    unlink_transfer(t);
    return luaL_error(L, "cannot start the request: %s", curl_multi_strerror(mrc));
  }
  t->state = RUNNING;
  s->running++;
  lua_pushvalue(L, 1);
  t->session_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static void finish_transfer(wf_transfer *t, CURLcode code) {
  wf_response *r = &t->response;
  long status = 0, connects = 0;
  double elapsed = 0;
  r->curl_code = code;
  if (curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
    r->status = status;
  if (curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &elapsed) == CURLE_OK)
    r->elapsed = elapsed;
  if (curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
    r->reused = connects == 0 && r->status > 0;
  end_attempt(t);
  t->state = DONE;
}

static void collect_finished(wf_session *s) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
    char *owner = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &owner) == CURLE_OK &&
        owner != NULL)
      finish_transfer((wf_transfer *)owner, msg->data.result);
  }
}

static int perform(lua_State *L, wf_session *s) {
  int still_running = 0;
  CURLMcode mrc = curl_multi_perform(s->multi, &still_running);
  if (mrc != CURLM_OK) return luaL_error(L, "curl_multi_perform: %s", curl_multi_strerror(mrc));
  collect_finished(s);
  return still_running;
}

/*
** session:drive([wait_seconds]) -> running. Performs, waits up to wait_seconds for
** activity (libcurl's own timers shorten the wait), performs again. When the first
** perform already finished a transfer there is no wait: the caller has news to
** collect, and with nothing left running curl_multi_poll would sleep it all out.
*/
static int session_drive(lua_State *L) {
  wf_session *s = check_session(L, 1);
  lua_Number wait = luaL_optnumber(L, 2, 0);
  int running_before = s->running;
  perform(L, s);
  if (wait > 0 && s->running > 0 && s->running == running_before) {
    int wait_ms = wait * 1000 >= INT_MAX ? INT_MAX : (int)(wait * 1000);
    CURLMcode mrc = curl_multi_poll(s->multi, NULL, 0, wait_ms > 0 ? wait_ms : 1, NULL);
    if (mrc != CURLM_OK) return luaL_error(L, "curl_multi_poll: %s", curl_multi_strerror(mrc));
    perform(L, s);
  }
  lua_pushinteger(L, s->running);
  return 1;
}

/* session:timeout() -> seconds until libcurl wants to be driven again, or nil. */
static int session_timeout(lua_State *L) {
  wf_session *s = check_session(L, 1);
  long ms = -1;
  if (curl_multi_timeout(s->multi, &ms) != CURLM_OK || ms < 0) return 0;
  lua_pushnumber(L, (lua_Number)ms / 1000);
  return 1;
}

static int session_running(lua_State *L) {
  wf_session *s = check_session(L, 1);
  lua_pushinteger(L, s->running);
  return 1;
}

/* Idempotent: close, __gc and __close. Transfers still attached are cancelled. */
static int session_close(lua_State *L) {
  wf_session *s = (wf_session *)luaL_checkudata(L, 1, WF_SESSION_TYPE);
  if (s->multi == NULL) return 0;
  while (s->transfers != NULL) {
    wf_transfer *t = s->transfers;
    end_attempt(t);
    unlink_transfer(t);
    if (t->state == RUNNING) t->state = CANCELLED;
  }
  while (s->idle_count > 0) curl_easy_cleanup(s->idle[--s->idle_count]);
  curl_multi_cleanup(s->multi);
  s->multi = NULL;
  return 0;
}

static int session_tostring(lua_State *L) {
  wf_session *s = (wf_session *)luaL_checkudata(L, 1, WF_SESSION_TYPE);
  if (s->multi == NULL) lua_pushliteral(L, "workflows.session (closed)");
  else lua_pushfstring(L, "workflows.session (%p)", (void *)s);
  return 1;
}

/* core.session() -> a new session */
static int new_session(lua_State *L) {
  wf_session *s = (wf_session *)wf_newuserdata(L, sizeof *s);
  CURLMcode mrc;
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, WF_SESSION_TYPE);
  s->multi = curl_multi_init();
  if (s->multi == NULL) return luaL_error(L, "curl_multi_init failed");
  mrc = curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  if (mrc != CURLM_OK)
    return luaL_error(L, "curl_multi_setopt: %s", curl_multi_strerror(mrc));
  return 1;
}

/* ----------------------------------------------------------- transfer methods */

static int transfer_done(lua_State *L) {
  wf_transfer *t = check_transfer(L, 1);
  lua_pushboolean(L, t->state != RUNNING);
  return 1;
}

/* transfer:result() -> outcome table; the body is freed once the table exists. */
static int transfer_result(lua_State *L) {
  wf_transfer *t = check_transfer(L, 1);
  if (t->state == RUNNING) return luaL_error(L, "transfer is still running");
  if (t->state == CANCELLED) return luaL_error(L, "transfer was cancelled");
  if (t->outcome_ref == LUA_NOREF) {
    wf_push_outcome(L, &t->response);
    wf_response_free(&t->response);
    lua_pushvalue(L, -1);
    t->outcome_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->outcome_ref);
  return 1;
}

static int transfer_cancel(lua_State *L) {
  release_transfer(L, check_transfer(L, 1));
  return 0;
}

static int transfer_tostring(lua_State *L) {
  static const char *const names[] = { "running", "done", "cancelled" };
  wf_transfer *t = check_transfer(L, 1);
  lua_pushfstring(L, "workflows.transfer (%s)", names[t->state]);
  return 1;
}

/* ---------------------------------------------------------------- opening */

static const luaL_Reg session_methods[] = {
  { "start", session_start },
  { "drive", session_drive },
  { "timeout", session_timeout },
  { "running", session_running },
  { "close", session_close },
  { NULL, NULL }
};

static const luaL_Reg session_metamethods[] = {
  { "__gc", session_close },
  { "__close", session_close },
  { "__tostring", session_tostring },
  { NULL, NULL }
};

static const luaL_Reg transfer_methods[] = {
  { "done", transfer_done },
  { "result", transfer_result },
  { "cancel", transfer_cancel },
  { NULL, NULL }
};

static const luaL_Reg transfer_metamethods[] = {
  { "__gc", transfer_cancel },
  { "__close", transfer_cancel },
  { "__tostring", transfer_tostring },
  { NULL, NULL }
};

static void create_metatable(lua_State *L, const char *name, const luaL_Reg *meta,
                             const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* Registers both metatables and sets `session` in the module table at the top. */
int wf_session_open(lua_State *L) {
  create_metatable(L, WF_SESSION_TYPE, session_metamethods, session_methods);
  create_metatable(L, WF_TRANSFER_TYPE, transfer_metamethods, transfer_methods);
  lua_pushcfunction(L, new_session);
  lua_setfield(L, -2, "session");
  return 0;
}
