/*
** Layer 4 (sessions) -- may call: transfer.c, socket.c, worker.c, request.c
**
** Sessions: libcurl's multi interface, bound so that the caller drives.
**
** A session owns one multi handle (and with it the connection cache, so that every
** request of a client reuses connections), the transfers started on it with their
** pool of idle easy handles (transfer.c keeps those, in the wf_multi the session lends
** them), and in socket mode the socket record (socket.c). This file has what both
** modes share -- start, running, close -- and both drivers: session:drive and
** session:timeout for poll mode, session:changes, socket_action, timer_expired and
** close_removed for socket mode. Nothing here blocks except session:drive, and only
** for as long as it is told.
*/
#define _POSIX_C_SOURCE 200809L           /* getpid */
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "session.h"
#include "socket.h"
#include "transfer.h"

#define WF_SESSION_TYPE "workflows.session"

typedef struct wf_session {
  wf_multi multi;                /* multi.handle is NULL once closed */
  wf_sockets sockets;            /* socket mode only: multi.sockets points here */
  wf_worker worker;              /* poll mode: multi.worker points here while it serves */
  int worker_made;               /* worker's lock and conditions exist */
} wf_session;

static int socket_mode(const wf_session *s) {
  return s->multi.sockets != NULL;
}

/*
** libcurl's global state (and with it the TLS library's) is set up once per process,
** when the first session is made rather than when the module loads: inside nginx the
** cosocket transport never makes one, and loading the core there opens nothing. It is
** never torn down: the module may be loaded into several Lua states, and any of them
** may outlive the others.
*/
static void require_curl(lua_State *L) {
  static int initialised = 0;
  if (!initialised) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      luaL_error(L, "curl_global_init failed");
    initialised = 1;
  }
}

/*
** Checks that index i is an open session that is not inside a libcurl call of its
** own. The second cannot happen from Lua, since libcurl's callbacks never call Lua;
** the check keeps it that way if that ever changes.
*/
static wf_session *check_session(lua_State *L, int i) {
  wf_session *s = (wf_session *)luaL_checkudata(L, i, WF_SESSION_TYPE);
  if (s->multi.handle == NULL) luaL_error(L, "attempt to use a closed session");
  if (s->multi.in_libcurl > 0) luaL_error(L, "recursive call");
  return s;
}

static wf_session *check_poll_session(lua_State *L, int i) {
  wf_session *s = check_session(L, i);
  if (socket_mode(s)) luaL_error(L, "session is in socket mode: drive it with socket_action");
  return s;
}

static wf_session *check_socket_session(lua_State *L, int i) {
  wf_session *s = check_session(L, i);
  if (!socket_mode(s)) luaL_error(L, "session is in poll mode: drive it with drive");
  return s;
}

/* Finishes every transfer libcurl reports done, as both drivers do after acting. */
static void collect_finished(wf_session *s) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(s->multi.handle, &left)) != NULL) {
    wf_transfer *t;
    if (msg->msg == CURLMSG_DONE && (t = wf_transfer_of(msg->easy_handle)) != NULL)
      wf_transfer_finish(t, msg->data.result, 0);
  }
}

/* Finishes every transfer the thread took out; raises when the thread failed. */
static int collect_from_worker(lua_State *L, wf_session *s) {
  wf_finished done[16];
  size_t count, i;
  int collected = 0;
  CURLMcode mrc;
  while ((count = wf_worker_take_finished(&s->worker, done, 16)) > 0) {
    for (i = 0; i < count; i++) {
      wf_transfer *t = wf_transfer_of(done[i].easy);
      if (t != NULL) wf_transfer_finish(t, done[i].code, 1);
      collected++;
    }
  }
  mrc = wf_worker_failure(&s->worker);
  if (mrc != CURLM_OK) return luaL_error(L, "transfer thread: %s", curl_multi_strerror(mrc));
  return collected;
}

/*
** The transfer thread serves the process that started it: a child made by fork has
** the session's memory but not its thread.
*/
static void check_process(lua_State *L, wf_session *s) {
  if (s->multi.worker != NULL && wf_worker_foreign(s->multi.worker))
    luaL_error(L, "session belongs to the process it was made in: make a new client after fork");
}

/*
** Starts the transfer thread on the first transfer: a session never used starts none.
** Where no thread can be made, the session stays without one and drives libcurl itself.
*/
static void start_worker(wf_session *s) {
  if (s->multi.worker == NULL || s->worker.started) return;
  if (!wf_worker_start(&s->worker)) s->multi.worker = NULL;
}

/* ------------------------------------------------------------ both modes */

/*
** session:start(request) -> transfer. Nothing moves until the session is driven; in
** socket mode the timer change that adding the handle makes waits in changes().
*/
static int session_start(lua_State *L) {
  wf_session *s = check_session(L, 1);
  wf_request req;
  wf_transfer *t;
  CURLcode rc;
  CURLMcode mrc;

  check_process(L, s);
  wf_read_request(L, 2, &req);
  t = wf_transfer_new(L, req.max_body);
  if (!wf_build_headers(L, &t->headers, &req)) return luaL_error(L, "out of memory");
  t->easy = wf_multi_take_easy(&s->multi);
  if (t->easy == NULL) return luaL_error(L, "curl_easy_init failed");
  rc = wf_set_options(t->easy, &req, t->headers, &t->response, t);
  if (rc == CURLE_OK && socket_mode(s)) rc = wf_socket_setup_easy(&s->sockets, t->easy);
  if (rc != CURLE_OK)
    return luaL_error(L, "cannot set up the request: %s", curl_easy_strerror(rc));
  start_worker(s);
  if (s->multi.worker != NULL &&
      !wf_worker_reserve(s->multi.worker, (size_t)s->multi.running + 1))
    return luaL_error(L, "out of memory");
  wf_transfer_link(&s->multi, t);
  if (s->multi.worker != NULL) {
    wf_worker_add(s->multi.worker, t->easy);
  } else {
    s->multi.in_libcurl++;
    mrc = curl_multi_add_handle(s->multi.handle, t->easy);
    s->multi.in_libcurl--;
    if (mrc != CURLM_OK) {
      wf_transfer_unlink(t);
      return luaL_error(L, "cannot start the request: %s", curl_multi_strerror(mrc));
    }
  }
  t->state = WF_RUNNING;
  s->multi.running++;
  lua_pushvalue(L, 1);
  t->session_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int session_running(lua_State *L) {
  wf_session *s = check_session(L, 1);
  lua_pushinteger(L, s->multi.running);
  return 1;
}

/*
** Idempotent: close, __gc and __close. Transfers still attached are cancelled; in
** socket mode every descriptor libcurl let go of, now or before, is closed for real.
*/
static int session_close(lua_State *L) {
  wf_session *s = (wf_session *)luaL_checkudata(L, 1, WF_SESSION_TYPE);
  if (s->multi.handle == NULL) return 0;
  if (s->multi.in_libcurl > 0) return luaL_error(L, "recursive call");
  if (s->multi.worker != NULL && wf_worker_foreign(s->multi.worker)) {
    wf_multi_abandon_all(&s->multi);
    s->multi.handle = NULL;
    s->multi.worker = NULL;
    s->worker_made = 0;
    return 0;
  }
  if (s->worker_made) wf_worker_stop(&s->worker);   /* every handle is the Lua thread's again */
  s->multi.worker = NULL;
  wf_multi_cancel_all(&s->multi);
  s->multi.in_libcurl++;
  /* Its only failures are a bad handle and a call from a callback: neither can be. */
  (void)curl_multi_cleanup(s->multi.handle);
  s->multi.in_libcurl--;
  s->multi.handle = NULL;
  wf_socket_close_all(&s->sockets);
  wf_socket_free(&s->sockets);
  if (s->worker_made) wf_worker_free(&s->worker);
  s->worker_made = 0;
  return 0;
}

static int session_tostring(lua_State *L) {
  wf_session *s = (wf_session *)luaL_checkudata(L, 1, WF_SESSION_TYPE);
  if (s->multi.handle == NULL) lua_pushliteral(L, "workflows.session (closed)");
  else if (socket_mode(s)) lua_pushfstring(L, "workflows.session (socket mode, %p)", (void *)s);
  else lua_pushfstring(L, "workflows.session (%p)", (void *)s);
  return 1;
}

/*
** Pushes a new open poll-mode session: built closed-first, so that a failure leaves
** an object __gc can free. core_socket_session makes it a socket-mode one.
*/
static wf_session *new_session(lua_State *L) {
  wf_session *s;
  CURLMcode mrc;
  require_curl(L);
  s = (wf_session *)wf_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, WF_SESSION_TYPE);
  s->multi.handle = curl_multi_init();
  if (s->multi.handle == NULL) luaL_error(L, "curl_multi_init failed");
  mrc = curl_multi_setopt(s->multi.handle, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  if (mrc != CURLM_OK) luaL_error(L, "curl_multi_setopt: %s", curl_multi_strerror(mrc));
  return s;
}

/*
** core.session([options]) -> a new poll-mode session. Its transfers move on a thread
** of their own unless options.thread is false (or no thread can be made).
*/
static int core_session(lua_State *L) {
  wf_session *s;
  int threaded = 1;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "thread");
    threaded = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  s = new_session(L);
  if (threaded && wf_worker_init(&s->worker, s->multi.handle, wf_transfer_ended_on_thread)) {
    s->worker_made = 1;
    s->multi.worker = &s->worker;
  }
  return 1;
}

/* core.socket_session() -> a new socket-mode session */
static int core_socket_session(lua_State *L) {
  wf_session *s = new_session(L);
  CURLMcode mrc;
  s->multi.sockets = &s->sockets;
  mrc = wf_socket_setup_multi(&s->sockets, s->multi.handle, &s->multi.in_libcurl);
  if (mrc != CURLM_OK) return luaL_error(L, "curl_multi_setopt: %s", curl_multi_strerror(mrc));
  return 1;
}

/* ------------------------------------------------------------ poll mode */

/* The running count is ours (transfers not yet collected), not libcurl's. */
static void perform(lua_State *L, wf_session *s) {
  int still_running = 0;
  CURLMcode mrc;
  s->multi.in_libcurl++;
  mrc = curl_multi_perform(s->multi.handle, &still_running);
  s->multi.in_libcurl--;
  if (mrc != CURLM_OK) luaL_error(L, "curl_multi_perform: %s", curl_multi_strerror(mrc));
  collect_finished(s);
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
  int running_before = s->multi.running;
  if (s->multi.worker != NULL) {
    check_process(L, s);
    if (collect_from_worker(L, s) == 0 && wait > 0 && s->multi.running > 0) {
      wf_worker_wait(s->multi.worker, wait);
      collect_from_worker(L, s);
    }
    lua_pushinteger(L, s->multi.running);
    return 1;
  }
  perform(L, s);
  if (wait > 0 && s->multi.running > 0 && s->multi.running == running_before) {
    int wait_ms = wait * 1000 >= INT_MAX ? INT_MAX : (int)(wait * 1000);
    CURLMcode mrc;
    s->multi.in_libcurl++;
    mrc = curl_multi_poll(s->multi.handle, NULL, 0, wait_ms > 0 ? wait_ms : 1, NULL);
    s->multi.in_libcurl--;
    if (mrc != CURLM_OK) return luaL_error(L, "curl_multi_poll: %s", curl_multi_strerror(mrc));
    perform(L, s);
  }
  lua_pushinteger(L, s->multi.running);
  return 1;
}

/* ------------------------------------------------------------ socket mode */

/* After a libcurl call: raise for its failure or a lost change, else collect. */
static int after_action(lua_State *L, wf_session *s, CURLMcode mrc) {
  wf_socket_sweep(&s->sockets);
  if (s->sockets.changes_lost)
    return luaL_error(L, "out of memory while recording socket changes");
  if (mrc != CURLM_OK)
    return luaL_error(L, "curl_multi_socket_action: %s", curl_multi_strerror(mrc));
  collect_finished(s);
  lua_pushinteger(L, s->multi.running);
  return 1;
}

/*
** session:socket_action(fd, events) -> running. events: "r", "w", "rw", or "e" for
** a poll error (libcurl then fails the transfer on that socket rather than waiting).
** A socket libcurl no longer knows is ignored, as libcurl itself does.
*/
static int session_socket_action(lua_State *L) {
  static const char *const names[] = { "r", "w", "rw", "e", NULL };
  static const int masks[] = { CURL_CSELECT_IN, CURL_CSELECT_OUT,
                               CURL_CSELECT_IN | CURL_CSELECT_OUT, CURL_CSELECT_ERR };
  wf_session *s = check_socket_session(L, 1);
  lua_Integer fd = luaL_checkinteger(L, 2);
  int events = masks[luaL_checkoption(L, 3, NULL, names)];
  int running = 0;
  CURLMcode mrc;
  luaL_argcheck(L, fd >= 0 && fd <= INT32_MAX, 2, "not a descriptor");
  s->multi.in_libcurl++;
  mrc = curl_multi_socket_action(s->multi.handle, (curl_socket_t)fd, events, &running);
  s->multi.in_libcurl--;
  return after_action(L, s, mrc);
}

/* session:timer_expired() -> running */
static int session_timer_expired(lua_State *L) {
  wf_session *s = check_socket_session(L, 1);
  int running = 0;
  CURLMcode mrc;
  s->multi.in_libcurl++;
  mrc = curl_multi_socket_action(s->multi.handle, CURL_SOCKET_TIMEOUT, 0, &running);
  s->multi.in_libcurl--;
  return after_action(L, s, mrc);
}

/*
** session:changes() -> sockets, timer: what libcurl asked of the loop since the last
** call (see wf_socket_push_changes).
*/
static int session_changes(lua_State *L) {
  wf_session *s = check_socket_session(L, 1);
  return wf_socket_push_changes(L, &s->sockets);
}

/*
** session:close_removed() -> count. Closes the descriptors libcurl let go of before the
** last changes(): the loop has stopped watching them by now.
*/
static int session_close_removed(lua_State *L) {
  wf_session *s = check_socket_session(L, 1);
  lua_pushinteger(L, (lua_Integer)wf_socket_close_removed(&s->sockets));
  return 1;
}

/* ---------------------------------------------------------------- opening */

/* Both modes' methods, then socket mode's own. */
static const luaL_Reg session_methods[] = {
  { "start", session_start }, { "drive", session_drive }, { "running", session_running },
  { "close", session_close },
  { "changes", session_changes }, { "socket_action", session_socket_action },
  { "timer_expired", session_timer_expired }, { "close_removed", session_close_removed },
  { NULL, NULL }
};

/*
** Registers workflows.session and sets core.session and core.socket_session in the
** module table at the top.
*/
int wf_session_open(lua_State *L) {
  wf_register_class(L, WF_SESSION_TYPE, session_close, session_tostring,
                    session_methods);
  lua_pushcfunction(L, core_session);
  lua_setfield(L, -2, "session");
  lua_pushcfunction(L, core_socket_session);
  lua_setfield(L, -2, "socket_session");
  return 0;
}
