/*
** Layer 2 (socket record) -- may call: nothing
**
** Socket mode: libcurl's multi_socket interface for an outside event loop.
**
** libcurl tells which sockets it wants watched, and when it wants a timer, through
** callbacks; here those callbacks only record (an array of changes, the latest timer
** value) into a wf_sockets, and the event loop reads the record with session:changes()
** after each call into the session. The loop reports readiness with
** session:socket_action and timer expiry with session:timer_expired. session.c binds
** those methods and drives libcurl; this file keeps the record and knows no session.
**
** libcurl closes a socket right after telling the loop to stop watching it; the loop
** hears of it only later, and by then the kernel could have handed the number to a new
** socket. So socket-mode handles close their sockets through on_close, which queues
** the descriptor instead; session:close_removed() closes the queued ones once the loop
** has read the changes that removed them. libcurl keeps a connection's close callback
** with the connection, so connections closed later from the cache, or by
** curl_multi_cleanup, are queued the same way; session:close closes every queued one.
** on_open reserves a queue slot for each socket it opens, so on_close never allocates.
**
** libcurl 7.88 does not always go through on_close: taking a transfer out of the multi
** handle while it connects closes its socket at once, with or without a "remove". So
** the record also keeps the descriptors it opened, and wf_socket_sweep, run after
** every call into libcurl, reports each one that is no longer open as "close", the
** loop's sign to drop its watcher before another socket takes the number. A number
** that comes back from on_open while still listed was closed that way too, and is
** reported in its place in the order of changes.
*/
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE               /* SOCK_CLOEXEC */

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "socket.h"

/* Grows *array (of *cap items of `size` bytes) to hold at least `need`; 0 on failure. */
static int reserve(void **array, size_t *cap, size_t need, size_t size) {
  size_t n = *cap ? *cap : 16;
  void *grown;
  if (need <= *cap) return 1;
  while (n < need) {
    if (n > ((size_t)-1) / 2 / size) return 0;
    n *= 2;
  }
  grown = realloc(*array, n * size);
  if (grown == NULL) return 0;
  *array = grown;
  *cap = n;
  return 1;
}

static int reserve_closing(wf_sockets *s, size_t need) {
  void *array = s->closing;
  int ok = reserve(&array, &s->closing_cap, need, sizeof *s->closing);
  s->closing = (curl_socket_t *)array;
  return ok;
}

/* "close": a change the core adds, after libcurl's own CURL_POLL_* values. */
#define WF_POLL_CLOSE (CURL_POLL_REMOVE + 1)

static int record_change(wf_sockets *s, curl_socket_t fd, int what) {
  void *array = s->changes;
  int ok = reserve(&array, &s->change_cap, s->change_count + 1, sizeof *s->changes);
  s->changes = (wf_socket_change *)array;
  if (!ok) {
    s->changes_lost = 1;
    return 0;
  }
  s->changes[s->change_count].fd = fd;
  s->changes[s->change_count].what = what;
  s->change_count++;
  return 1;
}

/* Forgets fd as open; 1 if it was listed. */
static int forget_open(wf_sockets *s, curl_socket_t fd) {
  size_t i;
  for (i = 0; i < s->open_count; i++) {
    if (s->open[i] == fd) {
      s->open[i] = s->open[--s->open_count];
      return 1;
    }
  }
  return 0;
}

/* Reports every listed descriptor that libcurl closed without on_close. */
void wf_socket_sweep(wf_sockets *s) {
  size_t i = 0;
  while (i < s->open_count) {
    curl_socket_t fd = s->open[i];
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      s->open[i] = s->open[--s->open_count];
      record_change(s, fd, WF_POLL_CLOSE);
    } else {
      i++;
    }
  }
}

/* ------------------------------------------------------- libcurl callbacks */
/* They only record: no Lua call, nothing that raises, nothing that blocks. */

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *clientp, void *socketp) {
  wf_sockets *s = (wf_sockets *)clientp;
  (void)easy;
  (void)socketp;
  assert(*s->in_libcurl > 0);
  return record_change(s, fd, what) ? 0 : -1;   /* -1: libcurl aborts the transfers */
}

static int on_timer(CURLM *multi, long timeout_ms, void *clientp) {
  wf_sockets *s = (wf_sockets *)clientp;
  (void)multi;
  assert(*s->in_libcurl > 0);
  s->timer_ms = timeout_ms;
  s->timer_changed = 1;
  return 0;
}

static curl_socket_t on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *address) {
  wf_sockets *s = (wf_sockets *)clientp;
  void *array = s->open;
  curl_socket_t fd;
  int ok;
  assert(*s->in_libcurl > 0);
  if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
  if (!reserve_closing(s, s->closing_count + s->open_count + 1)) return CURL_SOCKET_BAD;
  ok = reserve(&array, &s->open_cap, s->open_count + 1, sizeof *s->open);
  s->open = (curl_socket_t *)array;
  if (!ok) return CURL_SOCKET_BAD;
  fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd == CURL_SOCKET_BAD) return fd;
  /* still listed: libcurl closed the old socket of that number behind on_close */
  if (forget_open(s, fd) && !record_change(s, fd, WF_POLL_CLOSE)) {
    close(fd);
    return CURL_SOCKET_BAD;
  }
  s->open[s->open_count++] = fd;
  return fd;
}

static int on_close(void *clientp, curl_socket_t fd) {
  wf_sockets *s = (wf_sockets *)clientp;
  assert(*s->in_libcurl > 0);
  forget_open(s, fd);
  if (!reserve_closing(s, s->closing_count + 1)) return close(fd);   /* not ours: cannot wait */
  s->closing[s->closing_count++] = fd;
  return 0;
}

/* ------------------------------------------------------------ set-up */

/*
** Routes multi's socket and timer requests into s. in_libcurl is the owner's count of
** its libcurl calls under way, which the callbacks assert.
*/
CURLMcode wf_socket_setup_multi(wf_sockets *s, CURLM *multi, const int *in_libcurl) {
  CURLMcode mrc;
  s->in_libcurl = in_libcurl;
  if ((mrc = curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket)) != CURLM_OK ||
      (mrc = curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, s)) != CURLM_OK ||
      (mrc = curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer)) != CURLM_OK ||
      (mrc = curl_multi_setopt(multi, CURLMOPT_TIMERDATA, s)) != CURLM_OK)
    return mrc;
  return CURLM_OK;
}

/* Routes an easy handle's socket opening and closing through s. */
CURLcode wf_socket_setup_easy(wf_sockets *s, CURL *easy) {
  CURLcode rc;
  if ((rc = curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, on_open)) != CURLE_OK ||
      (rc = curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, s)) != CURLE_OK ||
      (rc = curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close)) != CURLE_OK ||
      (rc = curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, s)) != CURLE_OK)
    return rc;
  return CURLE_OK;
}

/* Closes every queued descriptor, whatever changes() said (session:close). */
void wf_socket_close_all(wf_sockets *s) {
  size_t i;
  for (i = 0; i < s->closing_count; i++) close(s->closing[i]);
  s->closing_count = s->closable = 0;
}

void wf_socket_free(wf_sockets *s) {
  free(s->changes);
  free(s->closing);
  free(s->open);
  s->changes = NULL;
  s->closing = NULL;
  s->open = NULL;
  s->change_count = s->change_cap = s->closing_cap = s->open_count = s->open_cap = 0;
}


/* ------------------------------------------------------------ reading the record */

/*
** The body of session:changes(): pushes { fd, what, ... } in libcurl's order, then
** { fd, "close" } for each descriptor queued for closing since the last call, and the
** timer (nil: unchanged, -1: stop, else milliseconds), and empties the record; returns
** how many values it pushed. The descriptors queued for closing so far become closable
** by wf_socket_close_removed.
**
** libcurl does not always say "remove" before it closes a socket it asked to have
** watched (a connection closed after its easy handle left the multi handle), so the
** "close" entries are what tells the loop to drop a watcher before the number is freed.
*/
int wf_socket_push_changes(lua_State *L, wf_sockets *s) {
  /* CURL_POLL_NONE (never sent by libcurl 7.88) asks to watch nothing: "remove" too */
  static const char *const whats[] = { "remove", "r", "w", "rw", "remove", "close" };
  size_t i, n = 0;
  lua_createtable(L, (int)((s->change_count + s->closing_count - s->closable) * 2), 0);
  for (i = 0; i < s->change_count; i++) {
    int what = s->changes[i].what;
    lua_pushinteger(L, (lua_Integer)s->changes[i].fd);
    lua_rawseti(L, -2, (int)(++n));
    lua_pushstring(L, what >= 0 && what <= WF_POLL_CLOSE ? whats[what] : "remove");
    lua_rawseti(L, -2, (int)(++n));
  }
  for (i = s->closable; i < s->closing_count; i++) {
    lua_pushinteger(L, (lua_Integer)s->closing[i]);
    lua_rawseti(L, -2, (int)(++n));
    lua_pushliteral(L, "close");
    lua_rawseti(L, -2, (int)(++n));
  }
  s->change_count = 0;
  s->closable = s->closing_count;
  if (!s->timer_changed) return 1;
  s->timer_changed = 0;
  lua_pushinteger(L, (lua_Integer)(s->timer_ms < 0 ? -1 : s->timer_ms));
  return 2;
}

/*
** The body of session:close_removed(): closes the descriptors libcurl let go of before
** the last wf_socket_push_changes (the loop has stopped watching them by now) and
** returns how many.
*/
size_t wf_socket_close_removed(wf_sockets *s) {
  size_t i, n = s->closable;
  if (n > 0) {
    for (i = 0; i < n; i++) close(s->closing[i]);
    memmove(s->closing, s->closing + n, (s->closing_count - n) * sizeof *s->closing);
    s->closing_count -= n;
  }
  s->closable = 0;
  return n;
}
