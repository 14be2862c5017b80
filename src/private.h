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

/*
** What arrived for one attempt: filled by libcurl's callbacks during the transfer
** (or by the fuzzer directly), then turned into the outcome table once.
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

/* response.c */
void wf_response_init(wf_response *r, size_t max_body);
void wf_response_free(wf_response *r);
int wf_response_append(wf_response *r, const char *data, size_t len);
void wf_response_header_line(wf_response *r, const char *line, size_t len);
void wf_push_outcome(lua_State *L, const wf_response *r);
double wf_retry_after_seconds(const char *value, double now);

/* decode.c */
int wf_decode_open(lua_State *L);
int wf_push_page(lua_State *L, const char *body, size_t len,
                 const char *header_request_id);
int wf_push_envelope(lua_State *L, const char *body, size_t len);

/* session.c */
int wf_session_open(lua_State *L);

/* core.c */
double wf_monotonic_seconds(void);
double wf_wall_seconds(void);

#endif
