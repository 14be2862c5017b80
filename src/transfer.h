/*
** Layer 3, transfers: what transfer.c offers session.c and core.c. A transfer knows
** the wf_multi it runs on, never the session that owns that.
*/
#ifndef WORKFLOWS_TRANSFER_H
#define WORKFLOWS_TRANSFER_H

#include "private.h"
#include "socket.h"
#include "worker.h"

#define WF_TRANSFER_TYPE "workflows.transfer"

/* Idle easy handles a session keeps for its next requests. */
#define WF_IDLE_HANDLES 8

typedef struct wf_transfer wf_transfer;

/*
** A multi handle and what its transfers need of it: the list of them, the count of
** those running, the idle easy handles, and in socket mode the socket record. A
** session embeds one and lends it to every transfer it starts.
*/
typedef struct wf_multi {
  CURLM *handle;                 /* NULL once closed */
  wf_transfer *transfers;        /* every transfer still attached, running or done */
  int running;
  int idle_count;
  CURL *idle[WF_IDLE_HANDLES];
  int in_libcurl;                /* > 0 while a libcurl call on this handle runs */
  wf_sockets *sockets;           /* socket mode's record; NULL in poll mode */
  wf_worker *worker;             /* poll mode's transfer thread; NULL without one */
} wf_multi;

enum wf_transfer_state { WF_RUNNING, WF_DONE, WF_RELEASED, WF_CANCELLED };

struct wf_transfer {
  wf_multi *multi;               /* NULL once detached */
  CURL *easy;                    /* NULL once the attempt is over */
  struct curl_slist *headers;
  enum wf_transfer_state state;
  int session_ref;               /* keeps the session alive while this lives */
  int outcome_ref;               /* the outcome table, built once */
  wf_transfer *prev, *next;
  wf_response response;
};

int wf_transfer_open(lua_State *L);
wf_transfer *wf_transfer_new(lua_State *L, size_t max_body);
void wf_transfer_link(wf_multi *m, wf_transfer *t);
void wf_transfer_unlink(wf_transfer *t);
void wf_transfer_finish(wf_transfer *t, CURLcode code, int detached);
void wf_transfer_ended_on_thread(CURL *easy);
wf_transfer *wf_transfer_of(CURL *easy);
CURL *wf_multi_take_easy(wf_multi *m);
void wf_multi_cancel_all(wf_multi *m);
void wf_multi_abandon_all(wf_multi *m);

#endif
