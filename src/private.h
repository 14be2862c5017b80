/*
** Layers 0-2, the helpers: what clock.c, decode.c, response.c and request.c offer the
** files above them. They know nothing of transfers or sessions; the fuzzer builds on
** them alone. Nothing here is visible from Lua.
*/
#ifndef WORKFLOWS_PRIVATE_H
#define WORKFLOWS_PRIVATE_H

#include <stddef.h>
#include <curl/curl.h>

#include "compat.h"

/* Long enough for any request id a sane server sends; longer ones are cut. */
#define WF_REQUEST_ID_MAX 128
#define WF_CONTENT_TYPE_MAX 96

/*
** What wf_scan_page_text found in a 2xx body, ahead of decoding it: the text without
** its null members (see decode.c), and how many members are left that decoding must
** compare against what it meets.
*/
typedef struct wf_page_text {
  char *text;                  /* malloc'd; NULL: nothing was cut, decode the body */
  size_t len;
  size_t members;              /* WF_NOT_COUNTED before a scan */
} wf_page_text;

#define WF_NOT_COUNTED ((size_t)-1)
/* A count no page reaches: the scan gave up, and every member gets a look. */
#define WF_NEVER_MATCHED ((size_t)-2)

/*
** What arrived for one attempt: filled by libcurl's callbacks during the transfer
** (or by the fuzzer, or by core.response_outcome), then turned into the outcome
** table once.
*/
typedef struct wf_response {
  char *body;
  size_t body_len, body_cap;
  size_t max_body;             /* 0: no cap */
  size_t announced_len;        /* Content-Length, as a hint for the first allocation */
  int too_large;               /* the body went past max_body */
  int out_of_memory;           /* growing the body failed */
  long status;                 /* 0 until a status line arrived */
  long proxy_status;           /* a proxy's refusal of a CONNECT (its status), else 0 */
  CURLcode curl_code;
  int reused;                  /* the attempt rode on an existing connection */
  double elapsed;              /* seconds */
  char request_id[WF_REQUEST_ID_MAX];
  char retry_after[64];        /* raw header value, "" when absent */
  char content_type[WF_CONTENT_TYPE_MAX];
  char error_text[CURL_ERROR_SIZE];
  wf_page_text page_text;      /* the body scanned on the transfer thread, if it was */
} wf_response;

/* What session:start reads from its request table. */
typedef struct wf_request {
  const char *url;
  const char *token;
  const char *user_agent;
  const char *ca_file;
  const char *ca_path;
  const char *proxy;            /* "http://host:port", no credentials; NULL: none */
  const char *proxy_user;       /* decoded; NULL: the proxy asks for none */
  const char *proxy_password;
  const char *client_cert;      /* PEM files for mTLS; NULL: none */
  const char *client_key;
  const char *client_key_password;
  long timeout_ms;
  long connect_timeout_ms;
  size_t max_body;
  int table;                   /* stack index of the request table, for its headers */
} wf_request;

/*
** Registers the metatable NAME of a Lua-visible object that owns resources: __gc and
** __close both call RELEASE (which must be safe to call twice), __tostring calls
** DESCRIBE, and __index holds METHODS. The stack is left as it was.
*/
static inline void wf_register_class(lua_State *L, const char *name,
                                     lua_CFunction release, lua_CFunction describe,
                                     const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  lua_pushcfunction(L, release);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, release);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, describe);
  lua_setfield(L, -2, "__tostring");
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* clock.c, layer 0 */
int wf_clock_open(lua_State *L);
double wf_monotonic_seconds(void);
double wf_wall_seconds(void);

/* ids.c, layer 0 */
int wf_ids_open(lua_State *L);

/* decode.c, layer 0 */
int wf_decode_open(lua_State *L);
int wf_push_page(lua_State *L, const char *body, size_t len,
                 const char *header_request_id);
int wf_push_scanned_page(lua_State *L, const char *body, size_t len,
                         const char *header_request_id, const wf_page_text *text);
void wf_scan_page_text(const char *body, size_t len, wf_page_text *out);
/*
** The same, reading the text one way: the fuzzer holds the ways against each other.
** A way this build or processor lacks falls back to the next one down.
*/
typedef enum { WF_SCAN_PLAIN, WF_SCAN_SSE2, WF_SCAN_AVX2 } wf_scan_way;
void wf_scan_page_text_with(const char *body, size_t len, wf_page_text *out, wf_scan_way way);
void wf_page_text_free(wf_page_text *t);
int wf_push_envelope(lua_State *L, const char *body, size_t len);

/* response.c, layer 1 */
int wf_response_open(lua_State *L);
void wf_response_init(wf_response *r, size_t max_body);
void wf_response_free(wf_response *r);
int wf_response_append(wf_response *r, const char *data, size_t len);
void wf_response_header_line(wf_response *r, const char *line, size_t len);
void wf_response_header(wf_response *r, const char *name, size_t name_len,
                        const char *value, size_t len);
void wf_response_scan(wf_response *r);
void wf_push_outcome(lua_State *L, const wf_response *r);
double wf_retry_after_seconds(const char *value, double now);

/* request.c, layer 2 */
int wf_request_open(lua_State *L);
void wf_read_request(lua_State *L, int t, wf_request *req);
int wf_build_headers(lua_State *L, struct curl_slist **headers, const wf_request *req);
CURLcode wf_set_options(CURL *easy, const wf_request *req, struct curl_slist *headers,
                        wf_response *r, void *owner);

#endif
