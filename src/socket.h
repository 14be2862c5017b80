/*
** Layer 2, socket mode's record: what socket.c offers transfer.c and session.c. It
** knows no session or transfer: whoever owns a wf_sockets passes it in.
*/
#ifndef WORKFLOWS_SOCKET_H
#define WORKFLOWS_SOCKET_H

#include "private.h"

/* One socket interest change, as libcurl's socket callback reported it. */
typedef struct wf_socket_change {
  curl_socket_t fd;
  int what;                    /* CURL_POLL_IN, _OUT, _INOUT or _REMOVE */
} wf_socket_change;

/*
** What libcurl's socket-mode callbacks record, and the descriptors they hold. A
** socket-mode session embeds one; the callbacks get it as their data.
*/
typedef struct wf_sockets {
  const int *in_libcurl;         /* the owner's count of libcurl calls under way */
  /* socket changes not yet handed out by wf_socket_push_changes */
  wf_socket_change *changes;
  size_t change_count, change_cap;
  int changes_lost;              /* growing `changes` failed: the session is broken */
  long timer_ms;                 /* latest timer request, valid when timer_changed */
  int timer_changed;
  /* descriptors libcurl closed, held open until wf_socket_close_removed */
  curl_socket_t *closing;
  size_t closing_count, closing_cap;
  size_t closable;               /* how many of them were queued before the last changes() */
  /* descriptors opened through the open callback and not closed through the close one */
  curl_socket_t *open;
  size_t open_count, open_cap;
} wf_sockets;

CURLMcode wf_socket_setup_multi(wf_sockets *s, CURLM *multi, const int *in_libcurl);
CURLcode wf_socket_setup_easy(wf_sockets *s, CURL *easy);
void wf_socket_sweep(wf_sockets *s);
int wf_socket_push_changes(lua_State *L, wf_sockets *s);
size_t wf_socket_close_removed(wf_sockets *s);
void wf_socket_close_all(wf_sockets *s);
void wf_socket_free(wf_sockets *s);

#endif
