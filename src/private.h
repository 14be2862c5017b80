/* What the core's files share. Nothing here is visible from Lua. */
#ifndef WORKFLOWS_PRIVATE_H
#define WORKFLOWS_PRIVATE_H

#include <stddef.h>
#include <curl/curl.h>

#include "compat.h"

#define WF_SESSION_TYPE "workflows.session"
#define WF_TRANSFER_TYPE "workflows.transfer"

/* Long enough for any request id a sane server sends; longer ones are cut. */
#define WF_REQUEST_ID_MAX 128
#define WF_CONTENT_TYPE_MAX 96

/* Idle easy handles a session keeps for its next requests. */
#define WF_IDLE_HANDLES 8

/*
** What arrived for one attempt: filled by libcurl's callbacks during the transfer
** (or by the fuzzer, or by core.response_outcome), then turned into the outcome
** table once.
*/
typedef struct wf_response {
  char *body;
  size_t body_len, body_cap;
  size_t max_body;             /* 0: no cap */
  int too_large;               /* the body went past max_body */
  int out_of_memory;           /* growing the body failed */
  long status;                 /* 0 until a status line arrived */
  CURLcode curl_code;
  int reused;                  /* the attempt rode on an existing connection */
  double elapsed;              /* seconds */
  char request_id[WF_REQUEST_ID_MAX];
  char retry_after[64];        /* raw header value, "" when absent */
  char content_type[WF_CONTENT_TYPE_MAX];
  char error_text[CURL_ERROR_SIZE];
} wf_response;

typedef struct wf_transfer wf_transfer;

/* One socket interest change, as libcurl's socket callback reported it. */
typedef struct wf_socket_change {
  curl_socket_t fd;
  int what;                    /* CURL_POLL_IN, _OUT, _INOUT or _REMOVE */
} wf_socket_change;

/*
** A session: one multi handle (its connection cache), idle easy handles, and the
** transfers started on it. In socket mode (core.socket_session) an outside event
** loop drives it; the fields below `socket_mode` exist for that mode only.
*/
typedef struct wf_session {
  CURLM *multi;                  /* NULL once closed */
  wf_transfer *transfers;        /* every transfer still attached, running or done */
  int running;
  int idle_count;
  CURL *idle[WF_IDLE_HANDLES];
  int in_libcurl;                /* > 0 while a libcurl call of this session runs */
  int socket_mode;
  /* socket changes not yet handed out by session:changes() */
  wf_socket_change *changes;
  size_t change_count, change_cap;
  int changes_lost;              /* growing `changes` failed: the session is broken */
  long timer_ms;                 /* latest timer request, valid when timer_changed */
  int timer_changed;
  /* descriptors libcurl closed, held open until session:close_removed() */
  curl_socket_t *closing;
  size_t closing_count, closing_cap;
  size_t closable;               /* how many of them were queued before the last changes() */
  /* descriptors opened through the open callback and not closed through the close one */
  curl_socket_t *open;
  size_t open_count, open_cap;
} wf_session;

enum wf_transfer_state { WF_RUNNING, WF_DONE, WF_RELEASED, WF_CANCELLED };

struct wf_transfer {
  wf_session *session;           /* NULL once detached */
  CURL *easy;                    /* NULL once the attempt is over */
  struct curl_slist *headers;
  enum wf_transfer_state state;
  int session_ref;               /* keeps the session alive while this lives */
  int outcome_ref;               /* the outcome table, built once */
  wf_transfer *prev, *next;
  wf_response response;
};

/* What session:start reads from its request table. */
typedef struct wf_request {
  const char *url;
  const char *token;
  const char *user_agent;
  const char *ca_file;
  const char *ca_path;
  long timeout_ms;
  long connect_timeout_ms;
  size_t max_body;
} wf_request;

/* core.c */
void wf_require_curl(lua_State *L);

/* clock.c */
int wf_clock_open(lua_State *L);
double wf_monotonic_seconds(void);
double wf_wall_seconds(void);

/* request.c */
int wf_request_open(lua_State *L);
void wf_read_request(lua_State *L, int t, wf_request *req);
int wf_build_headers(lua_State *L, struct curl_slist **headers, const char *token);
CURLcode wf_set_options(CURL *easy, const wf_request *req, struct curl_slist *headers,
                        wf_response *r, void *owner);

/* response.c */
int wf_response_open(lua_State *L);
void wf_response_init(wf_response *r, size_t max_body);
void wf_response_free(wf_response *r);
int wf_response_append(wf_response *r, const char *data, size_t len);
void wf_response_header_line(wf_response *r, const char *line, size_t len);
void wf_response_header(wf_response *r, const char *name, size_t name_len,
                        const char *value, size_t len);
void wf_push_outcome(lua_State *L, const wf_response *r);
double wf_retry_after_seconds(const char *value, double now);

/* decode.c */
int wf_decode_open(lua_State *L);
int wf_push_page(lua_State *L, const char *body, size_t len,
                 const char *header_request_id);
int wf_push_envelope(lua_State *L, const char *body, size_t len);

/* transfer.c */
int wf_transfer_open(lua_State *L);
wf_transfer *wf_transfer_new(lua_State *L, size_t max_body);
void wf_transfer_link(wf_session *s, wf_transfer *t);
void wf_transfer_unlink(wf_transfer *t);
void wf_transfer_end_attempt(wf_transfer *t);
void wf_transfer_finish(wf_transfer *t, CURLcode code);

/* session.c */
int wf_session_open(lua_State *L);
wf_session *wf_check_session(lua_State *L, int i);
wf_session *wf_new_session(lua_State *L);
void wf_collect_finished(wf_session *s);
void wf_give_back_easy(wf_session *s, CURL *easy);

/* socket.c */
int wf_socket_open(lua_State *L);
CURLMcode wf_socket_setup_multi(wf_session *s);
CURLcode wf_socket_setup_easy(wf_session *s, CURL *easy);
void wf_socket_close_all(wf_session *s);
void wf_socket_free(wf_session *s);
void wf_socket_sweep(wf_session *s);

#endif
