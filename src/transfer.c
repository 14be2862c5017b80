/*
** Layer 3 (transfers) -- may call: socket.c, worker.c, response.c
**
** Transfers: one request in flight on a multi handle, then its outcome. This file owns
** their lifetime, and with it the multi handle's side of them -- the list of attached
** transfers, the running count, the idle easy handles -- through the wf_multi that the
** session lends them. The session drives libcurl and calls wf_transfer_finish.
*/
#include <string.h>

#include "transfer.h"

static wf_transfer *check_transfer(lua_State *L, int i) {
  wf_transfer *t = (wf_transfer *)luaL_checkudata(L, i, WF_TRANSFER_TYPE);
  if (t->multi != NULL && t->multi->in_libcurl > 0) luaL_error(L, "recursive call");
  return t;
}

/*
** Pushes a new transfer, built closed-first (zeroed, released, with its metatable) so
** that a failure half-way through session:start leaves an object __gc can free.
*/
wf_transfer *wf_transfer_new(lua_State *L, size_t max_body) {
  wf_transfer *t = (wf_transfer *)wf_newuserdata(L, sizeof *t);
  memset(t, 0, sizeof *t);
  t->state = WF_RELEASED;
  t->session_ref = t->outcome_ref = LUA_NOREF;
  luaL_setmetatable(L, WF_TRANSFER_TYPE);
  wf_response_init(&t->response, max_body);
  return t;
}

/* ------------------------------------------------ the multi handle's side */

/* An idle easy handle, or a new one; NULL when curl_easy_init fails. */
CURL *wf_multi_take_easy(wf_multi *m) {
  if (m->idle_count > 0) return m->idle[--m->idle_count];
  return curl_easy_init();
}

/* The multi handle keeps the connections; an easy handle is only worth its allocation. */
static void give_back_easy(wf_multi *m, CURL *easy) {
  if (m != NULL && m->idle_count < WF_IDLE_HANDLES) {
    curl_easy_reset(easy);
    m->idle[m->idle_count++] = easy;
  } else {
    curl_easy_cleanup(easy);
  }
}

void wf_transfer_link(wf_multi *m, wf_transfer *t) {
  t->multi = m;
  t->prev = NULL;
  t->next = m->transfers;
  if (m->transfers != NULL) m->transfers->prev = t;
  m->transfers = t;
}

void wf_transfer_unlink(wf_transfer *t) {
  wf_multi *m = t->multi;
  if (m == NULL) return;
  if (t->prev != NULL) t->prev->next = t->next;
  else m->transfers = t->next;
  if (t->next != NULL) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  t->multi = NULL;
}

/* The transfer an easy handle serves (its CURLOPT_PRIVATE), or NULL. */
wf_transfer *wf_transfer_of(CURL *easy) {
  char *owner = NULL;
  if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &owner) != CURLE_OK) return NULL;
  return (wf_transfer *)owner;
}

/*
** Takes a running attempt's easy handle out of the multi handle, aborting it (which
** closes its connection). With a transfer thread, the thread lets go of the multi
** handle meanwhile, and may hold the easy handle elsewhere: handed over and not added
** yet, or finished and not collected.
*/
static CURLMcode take_out(wf_multi *m, CURL *easy) {
  CURLMcode mrc = CURLM_OK;
  int attached = 1;
  if (m->worker != NULL) {
    wf_worker_borrow(m->worker);
    attached = wf_worker_forget(m->worker, easy);
  }
  if (attached) {
    m->in_libcurl++;
    mrc = curl_multi_remove_handle(m->handle, easy);
    m->in_libcurl--;
  }
  if (m->worker != NULL) wf_worker_give_back(m->worker);
  if (m->sockets != NULL) wf_socket_sweep(m->sockets);
  return mrc;
}

/*
** Ends the attempt's use of libcurl: takes the easy handle out of the multi handle
** unless it is `detached` already, and frees the request headers. The response stays.
*/
static void end_attempt(wf_transfer *t, int detached) {
  wf_multi *m = t->multi;
  if (t->easy != NULL && !detached && m != NULL && m->worker != NULL &&
      wf_worker_foreign(m->worker)) {
    t->easy = NULL;                 /* a forked child's copy: the parent's thread's, left be */
  } else if (t->easy != NULL) {
    CURLMcode mrc = CURLM_BAD_HANDLE;
    if (detached) mrc = CURLM_OK;
    else if (m != NULL && m->handle != NULL) mrc = take_out(m, t->easy);
    /* A handle that could not be taken out is not fit for reuse; cleanup detaches it. */
    if (mrc == CURLM_OK) {
      give_back_easy(m, t->easy);
    } else {
      if (m != NULL) m->in_libcurl++;
      curl_easy_cleanup(t->easy);
      if (m != NULL) m->in_libcurl--;
    }
    t->easy = NULL;
  }
  if (t->state == WF_RUNNING && m != NULL) m->running--;
  curl_slist_free_all(t->headers);
  t->headers = NULL;
}

/*
** On the transfer thread, as an attempt ends well: a page's body is scanned for its
** decoding there (the Lua thread does not touch the response until it collects it).
*/
void wf_transfer_ended_on_thread(CURL *easy) {
  wf_transfer *t = wf_transfer_of(easy);
  long status = 0;
  if (t == NULL || curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) return;
  if (status >= 200 && status < 300) wf_response_scan(&t->response);
}

/* Records how the attempt ended, then ends it; `detached`: the easy handle is out already. */
void wf_transfer_finish(wf_transfer *t, CURLcode code, int detached) {
  wf_response *r = &t->response;
  long status = 0, connects = 0, connect_code = 0;
  double elapsed = 0;
  r->curl_code = code;
  if (curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
    r->status = status;
  if (code != CURLE_OK &&
      curl_easy_getinfo(t->easy, CURLINFO_HTTP_CONNECTCODE, &connect_code) == CURLE_OK &&
      connect_code >= 300)
    r->proxy_status = connect_code;
  if (curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &elapsed) == CURLE_OK)
    r->elapsed = elapsed;
  if (curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
    r->reused = connects == 0 && r->status > 0;
  end_attempt(t, detached);
  t->state = WF_DONE;
}

/*
** Ends the attempt of every transfer still attached to m and detaches it (a running
** one becomes cancelled), then frees the idle easy handles: closing a session does
** this before it frees the multi handle.
*/
void wf_multi_cancel_all(wf_multi *m) {
  while (m->transfers != NULL) {
    wf_transfer *t = m->transfers;
    end_attempt(t, 0);
    wf_transfer_unlink(t);
    if (t->state == WF_RUNNING) t->state = WF_CANCELLED;
  }
  while (m->idle_count > 0) curl_easy_cleanup(m->idle[--m->idle_count]);
}

/*
** In a child made by fork, where the session's thread is not: detaches every transfer
** and forgets the idle easy handles without a call of libcurl, whose state the copy
** may have caught half-way. Their memory stays the child's until it exits.
*/
void wf_multi_abandon_all(wf_multi *m) {
  while (m->transfers != NULL) {
    wf_transfer *t = m->transfers;
    t->easy = NULL;
    if (t->state == WF_RUNNING) t->state = WF_CANCELLED;
    wf_transfer_unlink(t);
  }
  m->running = 0;
  m->idle_count = 0;
}

/* Idempotent: release, __gc and __close all come here. */
static void release_transfer(lua_State *L, wf_transfer *t) {
  end_attempt(t, 0);
  wf_transfer_unlink(t);
  t->state = WF_RELEASED;
  wf_response_free(&t->response);
  luaL_unref(L, LUA_REGISTRYINDEX, t->outcome_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, t->session_ref);
  t->outcome_ref = t->session_ref = LUA_NOREF;
}

/* ----------------------------------------------------------- methods */

static int transfer_done(lua_State *L) {
  wf_transfer *t = check_transfer(L, 1);
  lua_pushboolean(L, t->state != WF_RUNNING);
  return 1;
}

/* transfer:result() -> outcome table; the body is freed once the table exists. */
static int transfer_result(lua_State *L) {
  wf_transfer *t = check_transfer(L, 1);
  if (t->state == WF_RUNNING) return luaL_error(L, "transfer is still running");
  if (t->state == WF_RELEASED) return luaL_error(L, "transfer was released");
  if (t->state == WF_CANCELLED) return luaL_error(L, "transfer was cancelled");
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

static int transfer_release(lua_State *L) {
  release_transfer(L, check_transfer(L, 1));
  return 0;
}

static int transfer_tostring(lua_State *L) {
  static const char *const names[] = { "running", "done", "released", "cancelled" };
  wf_transfer *t = (wf_transfer *)luaL_checkudata(L, 1, WF_TRANSFER_TYPE);
  lua_pushfstring(L, "workflows.transfer (%s)", names[t->state]);
  return 1;
}

static const luaL_Reg transfer_methods[] = {
  { "done", transfer_done }, { "result", transfer_result }, { "release", transfer_release },
  { NULL, NULL }
};

/* Registers the workflows.transfer metatable. */
int wf_transfer_open(lua_State *L) {
  wf_register_class(L, WF_TRANSFER_TYPE, transfer_release, transfer_tostring,
                    transfer_methods);
  return 0;
}
