/*
** Layer 1 (responses) -- may call: decode.c, clock.c
**
** One attempt's response: the body and headers as they arrive, and the outcome table
** built from them once the attempt is over. Nothing here touches libcurl's handles,
** so the fuzzer drives it with bytes alone, and core.response_outcome with what
** another transport received.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>

#include "private.h"

void wf_response_init(wf_response *r, size_t max_body) {
  memset(r, 0, sizeof *r);
  r->max_body = max_body;
  r->page_text.members = WF_NOT_COUNTED;
}

void wf_response_free(wf_response *r) {
  free(r->body);
  r->body = NULL;
  r->body_len = r->body_cap = 0;
  wf_page_text_free(&r->page_text);
}

/*
** Scans the body of a page ahead of its decoding (see decode.c): on the transfer
** thread, where it costs the Lua thread nothing.
*/
void wf_response_scan(wf_response *r) {
  wf_page_text_free(&r->page_text);
  wf_scan_page_text(r->body, r->body_len, &r->page_text);
}

/* The first allocation of a body: room for a small one, or for what the server announced. */
#define FIRST_BODY_CAP 16384
/* A larger announcement is believed only this far: a length is a claim, not bytes. */
#define MOST_ANNOUNCED_CAP (4u << 20)

/*
** Room for what the server announced, so that the body is not copied again each time
** it doubles; else room for a small body.
*/
static size_t first_body_cap(const wf_response *r) {
  size_t cap = r->announced_len;
  if (cap > MOST_ANNOUNCED_CAP) cap = MOST_ANNOUNCED_CAP;
  if (r->max_body > 0 && cap > r->max_body) cap = r->max_body;
  return cap > FIRST_BODY_CAP ? cap : FIRST_BODY_CAP;
}

/* Returns 0 when the bytes cannot be kept: past the cap, or out of memory. */
int wf_response_append(wf_response *r, const char *data, size_t len) {
  if (r->max_body > 0 && len > r->max_body - r->body_len) {
    r->too_large = 1;
    return 0;
  }
  if (len > r->body_cap - r->body_len) {
    size_t cap = r->body_cap ? r->body_cap : first_body_cap(r);
    char *grown;
    while (cap - r->body_len < len) {
      if (cap > ((size_t)-1) / 2) {
        r->out_of_memory = 1;
        return 0;
      }
      cap *= 2;
    }
    grown = realloc(r->body, cap);
    if (grown == NULL) {
      r->out_of_memory = 1;
      return 0;
    }
    r->body = grown;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, data, len);
  r->body_len += len;
  return 1;
}

/*
** Copies a header value into dst, trimmed, cut to fit, and with anything that is not
** printable ASCII dropped: these values end up in error messages and log lines.
*/
static void copy_header_value(char *dst, size_t size, const char *value, size_t len) {
  size_t n = 0;
  while (len > 0 && (*value == ' ' || *value == '\t')) value++, len--;
  while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t' ||
                     value[len - 1] == '\r' || value[len - 1] == '\n'))
    len--;
  for (; len > 0 && n + 1 < size; value++, len--)
    if (*value >= 0x20 && *value < 0x7f) dst[n++] = *value;
  dst[n] = '\0';
}

/* A Content-Length value's number, or 0 when it is none (or past a size_t). */
static size_t announced_length(const char *value, size_t len) {
  size_t n = 0, digits = 0;
  while (len > 0 && (*value == ' ' || *value == '\t')) value++, len--;
  for (; len > 0 && *value >= '0' && *value <= '9'; value++, len--, digits++) {
    if (n > (SIZE_MAX - 9) / 10) return 0;
    n = n * 10 + (size_t)(*value - '0');
  }
  return digits > 0 ? n : 0;
}

static int header_is(const char *line, size_t name_len, const char *name) {
  return strlen(name) == name_len && strncasecmp(line, name, name_len) == 0;
}

/*
** Keeps the value of the headers the outcome needs (name matched without regard to
** case); the others are ignored.
*/
void wf_response_header(wf_response *r, const char *name, size_t name_len,
                        const char *value, size_t len) {
  if (header_is(name, name_len, "x-request-id"))
    copy_header_value(r->request_id, sizeof r->request_id, value, len);
  else if (header_is(name, name_len, "retry-after"))
    copy_header_value(r->retry_after, sizeof r->retry_after, value, len);
  else if (header_is(name, name_len, "content-type"))
    copy_header_value(r->content_type, sizeof r->content_type, value, len);
  else if (header_is(name, name_len, "content-length"))
    r->announced_len = announced_length(value, len);
}

/* Takes one raw header line, as libcurl's header callback passes it. */
void wf_response_header_line(wf_response *r, const char *line, size_t len) {
  const char *colon;
  size_t name_len;
  if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
    /* a new header block (after a 1xx): forget what the previous one said */
    r->request_id[0] = r->retry_after[0] = r->content_type[0] = '\0';
    r->announced_len = 0;
    return;
  }
  colon = memchr(line, ':', len);
  if (colon == NULL) return;
  name_len = (size_t)(colon - line);
  wf_response_header(r, line, name_len, colon + 1, len - name_len - 1);
}

/*
** Seconds to wait from a Retry-After value: delta-seconds or an HTTP date, clamped
** at 0 for dates in the past; -1 when absent or unreadable.
*/
double wf_retry_after_seconds(const char *value, double now) {
  const char *p = value;
  double seconds = 0;
  time_t date;
  if (*p == '\0') return -1;
  if (*p >= '0' && *p <= '9') {
    for (; *p >= '0' && *p <= '9'; p++)
      if (seconds < 1e9) seconds = seconds * 10 + (*p - '0');
    return *p == '\0' ? seconds : -1;
  }
  date = curl_getdate(value, NULL);
  if (date == -1) return -1;
  return (double)date > now ? (double)date - now : 0;
}

static int is_tls_failure(CURLcode code) {
  switch (code) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
      return 1;
    default:
      return 0;
  }
}

static void set_string(lua_State *L, int t, const char *key, const char *value) {
  if (value != NULL && value[0] != '\0') {
    lua_pushstring(L, value);
    lua_setfield(L, t, key);
  }
}

static void set_failure(lua_State *L, int t, const char *kind) {
  lua_pushboolean(L, 0);
  lua_setfield(L, t, "ok");
  lua_pushstring(L, kind);
  lua_setfield(L, t, "kind");
}

/* Transport failures: the attempt ended before a whole response arrived. */
static void set_transfer_failure(lua_State *L, int t, const wf_response *r) {
  const char *detail = r->error_text[0] ? r->error_text : curl_easy_strerror(r->curl_code);
  if (r->too_large || r->curl_code == CURLE_FILESIZE_EXCEEDED) {
    set_failure(L, t, "decode");
    lua_pushboolean(L, 1);
    lua_setfield(L, t, "too_large");
    char text[96];
    snprintf(text, sizeof text, "response body is larger than max_body_bytes (%zu bytes)",
             r->max_body);
    lua_pushstring(L, text);
  } else if (r->out_of_memory) {
    set_failure(L, t, "network");
    lua_pushliteral(L, "out of memory while receiving the response");
  } else if (r->curl_code == CURLE_OPERATION_TIMEDOUT) {
    set_failure(L, t, "timeout");
    lua_pushfstring(L, "request timed out (%s)", detail);
  } else if (is_tls_failure(r->curl_code)) {
    set_failure(L, t, "network");
    lua_pushboolean(L, 1);
    lua_setfield(L, t, "tls");
    lua_pushfstring(L, "TLS verification failed (%s)", detail);
  } else {
    set_failure(L, t, "network");
    lua_pushstring(L, detail);
  }
  lua_setfield(L, t, "message");
  if (r->proxy_status > 0) {
    lua_pushinteger(L, (lua_Integer)r->proxy_status);
    lua_setfield(L, t, "proxy_status");
  }
  if (r->curl_code != CURLE_OK) {             /* a body cut by another transport has none */
    lua_pushinteger(L, (lua_Integer)r->curl_code);
    lua_setfield(L, t, "curl_code");
  }
}

static int content_type_is_json(const char *content_type) {
  return content_type[0] == '\0' || strstr(content_type, "json") != NULL;
}

/* A 2xx: the page, or a decode failure naming what is wrong with the body. */
static void set_page(lua_State *L, int t, const wf_response *r) {
  int pushed;
  if (r->page_text.members != WF_NOT_COUNTED) {
    pushed = wf_push_scanned_page(L, r->body, r->body_len, r->request_id, &r->page_text);
  } else {
    pushed = wf_push_page(L, r->body, r->body_len, r->request_id);
  }
  if (pushed) {
    lua_setfield(L, t, "page");
    lua_pushboolean(L, 1);
    lua_setfield(L, t, "ok");
    return;
  }
  if (!content_type_is_json(r->content_type)) {
    lua_pushfstring(L, "%s (Content-Type %s)", lua_tostring(L, -1), r->content_type);
    lua_remove(L, -2);
  }
  lua_setfield(L, t, "message");
  set_failure(L, t, "decode");
}

/* Any other status: an http failure, with what the error envelope says, if any. */
static void set_http_failure(lua_State *L, int t, const wf_response *r) {
  int envelope;
  set_failure(L, t, "http");
  if (!wf_push_envelope(L, r->body, r->body_len)) return;
  envelope = lua_gettop(L);
  lua_getfield(L, envelope, "code");
  lua_setfield(L, t, "code");
  lua_getfield(L, envelope, "message");
  lua_setfield(L, t, "message");
  if (wf_getfield(L, envelope, "requestId") == LUA_TSTRING)
    lua_setfield(L, t, "request_id");         /* the body's id wins over the header's */
  else
    lua_pop(L, 1);
  lua_pop(L, 1);
}

/* Pushes the outcome table that doc/core.md describes. */
void wf_push_outcome(lua_State *L, const wf_response *r) {
  int t;
  double retry_after;
  lua_createtable(L, 0, 10);
  t = lua_gettop(L);
  if (r->status > 0) {
    lua_pushinteger(L, (lua_Integer)r->status);
    lua_setfield(L, t, "status");
  }
  set_string(L, t, "request_id", r->request_id);
  retry_after = wf_retry_after_seconds(r->retry_after, wf_wall_seconds());
  if (retry_after >= 0) {
    lua_pushnumber(L, (lua_Number)retry_after);
    lua_setfield(L, t, "retry_after");
  }
  lua_pushnumber(L, (lua_Number)r->elapsed);
  lua_setfield(L, t, "elapsed");
  lua_pushboolean(L, r->reused);
  lua_setfield(L, t, "reused");
  /* the body as received and decoded; none is kept of one too large */
  lua_pushinteger(L, r->too_large ? 0 : (lua_Integer)r->body_len);
  lua_setfield(L, t, "bytes");

  if (r->curl_code != CURLE_OK || r->too_large || r->out_of_memory)
    set_transfer_failure(L, t, r);
  else if (r->status >= 200 && r->status < 300)
    set_page(L, t, r);
  else
    set_http_failure(L, t, r);
}

/* ------------------------------------------------- core.response_outcome */

static const char *opt_string(lua_State *L, int t, const char *key, size_t *len) {
  const char *value = NULL;
  int type = wf_getfield(L, t, key);
  *len = 0;
  if (type == LUA_TSTRING) value = lua_tolstring(L, -1, len);
  else if (type != LUA_TNIL) luaL_error(L, "response field '%s' must be a string", key);
  lua_pop(L, 1);  /* the table still holds the string */
  return value;
}

static lua_Number opt_number(lua_State *L, int t, const char *key, lua_Number fallback) {
  int type = wf_getfield(L, t, key);
  lua_Number n = fallback;
  if (type == LUA_TNUMBER) n = lua_tonumber(L, -1);
  else if (type != LUA_TNIL) luaL_error(L, "response field '%s' must be a number", key);
  lua_pop(L, 1);
  return n;
}

static void opt_header(lua_State *L, wf_response *r, int t, const char *key,
                       const char *header) {
  size_t len;
  const char *value = opt_string(L, t, key, &len);
  if (value != NULL) wf_response_header(r, header, strlen(header), value, len);
}

/*
** core.response_outcome(fields) -> the outcome table transfer:result() gives, for a
** response another transport (OpenResty's cosockets) received in full. fields:
** status (required), body, request_id, retry_after, content_type (raw header values),
** max_body_bytes, elapsed, reused. The body is read in place, not copied.
*/
static int core_response_outcome(lua_State *L) {
  wf_response r;
  lua_Number status, max_body, elapsed;
  size_t body_len;
  const char *body;
  int type;
  luaL_checktype(L, 1, LUA_TTABLE);
  status = opt_number(L, 1, "status", 0);
  if (!(status >= 100 && status <= 599) || status != (lua_Number)(long)status)
    return luaL_error(L, "response field 'status' must be an integer from 100 to 599");
  max_body = opt_number(L, 1, "max_body_bytes", 0);
  if (wf_getfield(L, 1, "max_body_bytes") != LUA_TNIL && !(max_body >= 1))
    return luaL_error(L, "response field 'max_body_bytes' must be at least 1");
  lua_pop(L, 1);
  elapsed = opt_number(L, 1, "elapsed", 0);
  if (!(elapsed >= 0)) return luaL_error(L, "response field 'elapsed' must be at least 0");
  type = wf_getfield(L, 1, "reused");
  if (type != LUA_TNIL && type != LUA_TBOOLEAN)
    return luaL_error(L, "response field 'reused' must be a boolean");
  body = opt_string(L, 1, "body", &body_len);

  wf_response_init(&r, max_body >= (lua_Number)(SIZE_MAX / 2) ? SIZE_MAX / 2 : (size_t)max_body);
  r.status = (long)status;
  r.elapsed = (double)elapsed;
  r.reused = lua_toboolean(L, -1);
  lua_pop(L, 1);
  opt_header(L, &r, 1, "request_id", "x-request-id");
  opt_header(L, &r, 1, "retry_after", "retry-after");
  opt_header(L, &r, 1, "content_type", "content-type");
  if (r.max_body > 0 && body_len > r.max_body) {
    r.too_large = 1;                          /* as the curl path: the body is dropped */
  } else {
    r.body = (char *)body;                    /* only read: r is never freed */
    r.body_len = body_len;
  }
  wf_push_outcome(L, &r);
  return 1;
}

/* Sets response_outcome in the module table at the top. */
int wf_response_open(lua_State *L) {
  lua_pushcfunction(L, core_response_outcome);
  lua_setfield(L, -2, "response_outcome");
  return 0;
}
