/*
** Sessions: libcurl's multi interface, bound so that the caller drives.
**
** A session owns one multi handle (and with it the connection cache, so that every
** request of a client reuses connections) and a few idle easy handles. This file has
** what both modes share -- start, running, close -- and the poll-mode driver
** (session:drive, session:timeout); socket.c has the socket-mode one. Nothing here
** blocks except session:drive, and only for as long as it is told.
*/
#include <limits.h>
#include <string.h>

#include "private.h"

/*
** Checks that index i is an open session that is not inside a libcurl call of its
** own. The second cannot happen from Lua, since libcurl's callbacks never call Lua;
** the check keeps it that way if that ever changes.
*/
wf_session *wf_check_session(lua_State *L, int i) {
  wf_session *s = (wf_session *)luaL_checkudata(L, i, WF_SESSION_TYPE);
  if (s->multi == NULL) luaL_error(L, "attempt to use a closed session");
  if (s->in_libcurl > 0) luaL_error(L, "recursive call");
  return s;
}

static wf_session *check_poll_session(lua_State *L, int i) {
  wf_session *s = wf_check_session(L, i);
  if (s->socket_mode) luaL_error(L, "session is in socket mode: drive it with socket_action");
  return s;
}

static CURL *take_easy(wf_session *s) {
  if (s->idle_count > 0) return s->idle[--s->idle_count];
  return curl_easy_init();
}

/* The multi handle keeps the connections; an easy handle is only worth its allocation. */
void wf_give_back_easy(wf_session *s, CURL *easy) {
  if (s != NULL && s->idle_count < WF_IDLE_HANDLES) {
    curl_easy_reset(easy);
    s->idle[s->idle_count++] = easy;
  } else {
    curl_easy_cleanup(easy);
  }
}

/* Finishes every transfer libcurl reports done, as both drivers do after acting. */
void wf_collect_finished(wf_session *s) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
    char *owner = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &owner) == CURLE_OK &&
        owner != NULL)
      wf_transfer_finish((wf_transfer *)owner, msg->data.result);
  }
}

/* ------------------------------------------------------------ both modes */

/*
** session:start(request) -> transfer. Nothing moves until the session is driven; in
** socket mode the timer change that adding the handle makes waits in changes().
*/
static int session_start(lua_State *L) {
  wf_session *s = wf_check_session(L, 1);
  wf_request req;
  wf_transfer *t;
  CURLcode rc;
  CURLMcode mrc;

  wf_read_request(L, 2, &req);
  t = wf_transfer_new(L, req.max_body);
  if (!wf_build_headers(L, &t->headers, req.token)) return luaL_error(L, "out of memory");
  t->easy = take_easy(s);
  if (t->easy == NULL) return luaL_error(L, "curl_easy_init failed");
  rc = wf_set_options(t->easy, &req, t->headers, &t->response, t);
  if (rc == CURLE_OK && s->socket_mode) rc = wf_socket_setup_easy(s, t->easy);
  if (rc != CURLE_OK)
    return luaL_error(L, "cannot set up the request: %s", curl_easy_strerror(rc));
  wf_transfer_link(s, t);
  s->in_libcurl++;
  mrc = curl_multi_add_handle(s->multi, t->easy);
  s->in_libcurl--;
  if (mrc != CURLM_OK) {
    wf_transfer_unlink(t);
    return luaL_error(L, "cannot start the request: %s", curl_multi_strerror(mrc));
  }
  t->state = WF_RUNNING;
  s->running++;
  lua_pushvalue(L, 1);
  t->session_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int session_running(lua_State *L) {
  wf_session *s = wf_check_session(L, 1);
  lua_pushinteger(L, s->running);
  return 1;
}

/*
** Idempotent: close, __gc and __close. Transfers still attached are cancelled; in
** socket mode every descriptor libcurl let go of, now or before, is closed for real.
*/
static int session_close(lua_State *L) {
  wf_session *s = (wf_session *)luaL_checkudata(L, 1, WF_SESSION_TYPE);
  if (s->multi == NULL) return 0;
  if (s->in_libcurl > 0) return luaL_error(L, "recursive call");
  while (s->transfers != NULL) {
    wf_transfer *t = s->transfers;
    wf_transfer_end_attempt(t);
    wf_transfer_unlink(t);
    if (t->state == WF_RUNNING) t->state = WF_CANCELLED;
  }
  while (s->idle_count > 0) curl_easy_cleanup(s->idle[--s->idle_count]);
  s->in_libcurl++;
  /* Its only failures are a bad handle and a call from a callback: neither can be. */
  (void)curl_multi_cleanup(s->multi);
  s->in_libcurl--;
  s->multi = NULL;
  wf_socket_close_all(s);
  wf_socket_free(s);
  return 0;
}

static int session_tostring(lua_State *L) {
  wf_session *s = (wf_session *)luaL_checkudata(L, 1, WF_SESSION_TYPE);
  if (s->multi == NULL) lua_pushliteral(L, "workflows.session (closed)");
  else if (s->socket_mode) lua_pushfstring(L, "workflows.session (socket mode, %p)", (void *)s);
  else lua_pushfstring(L, "workflows.session (%p)", (void *)s);
  return 1;
}

/*
** Pushes a new open session: built closed-first, so that a failure leaves an object
** __gc can free. socket.c finishes a socket-mode one.
*/
wf_session *wf_new_session(lua_State *L) {
  wf_session *s;
  CURLMcode mrc;
  wf_require_curl(L);
  s = (wf_session *)wf_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, WF_SESSION_TYPE);
  s->multi = curl_multi_init();
  if (s->multi == NULL) luaL_error(L, "curl_multi_init failed");
  mrc = curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  if (mrc != CURLM_OK) luaL_error(L, "curl_multi_setopt: %s", curl_multi_strerror(mrc));
  return s;
}

/* core.session() -> a new poll-mode session */
static int core_session(lua_State *L) {
  wf_new_session(L);
  return 1;
}

/* ------------------------------------------------------------ poll mode */

/* The running count is ours (transfers not yet collected), not libcurl's. */
static void perform(lua_State *L, wf_session *s) {
  int still_running = 0;
  CURLMcode mrc;
  s->in_libcurl++;
  mrc = curl_multi_perform(s->multi, &still_running);
  s->in_libcurl--;
  if (mrc != CURLM_OK) luaL_error(L, "curl_multi_perform: %s", curl_multi_strerror(mrc));
  wf_collect_finished(s);
}

/*
** session:drive([wait_seconds]) -> running. Performs, waits up to wait_seconds for
** activity (libcurl's own timers shorten the wait), performs again. When the first
** perform already finished a transfer there is no wait: the caller has news to
** collect, and with nothing left running curl_multi_poll would sleep it all out.
*/
static int session_drive(lua_State *L) {
  wf_session *s = check_poll_session(L, 1);
  lua_Number wait = luaL_optnumber(L, 2, 0);
  int running_before = s->running;
  perform(L, s);
  if (wait > 0 && s->running > 0 && s->running == running_before) {
    int wait_ms = wait * 1000 >= INT_MAX ? INT_MAX : (int)(wait * 1000);
    CURLMcode mrc;
    s->in_libcurl++;
    mrc = curl_multi_poll(s->multi, NULL, 0, wait_ms > 0 ? wait_ms : 1, NULL);
    s->in_libcurl--;
    if (mrc != CURLM_OK) return luaL_error(L, "curl_multi_poll: %s", curl_multi_strerror(mrc));
    perform(L, s);
  }
  lua_pushinteger(L, s->running);
  return 1;
}

/* session:timeout() -> seconds until libcurl wants to be driven again, or nil. */
static int session_timeout(lua_State *L) {
  wf_session *s = wf_check_session(L, 1);
  long ms = -1;
  if (curl_multi_timeout(s->multi, &ms) != CURLM_OK || ms < 0) return 0;
  lua_pushnumber(L, (lua_Number)ms / 1000);
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

/* Registers workflows.session (socket.c adds its methods) and sets core.session. */
int wf_session_open(lua_State *L) {
  luaL_newmetatable(L, WF_SESSION_TYPE);
  luaL_setfuncs(L, session_metamethods, 0);
  luaL_newlib(L, session_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, core_session);
  lua_setfield(L, -2, "session");
  return 0;
}
