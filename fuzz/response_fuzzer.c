/*
** libFuzzer harness for the response path: the bytes a server sends go in through
** the same functions libcurl's callbacks call, and the outcome table comes out.
**
** An input is read as a small text file, so that seeds stay readable:
**
**   200 [CURLCODE [MAX_BODY]]\n       the status (0: no status line arrived)
**   X-Request-Id: abc\r\n               header lines, up to the first empty line
**   \r\n
**   {"code":200,...}                    the body: everything that is left
**
** Input without that shape still goes through: it is taken as the body of a 200.
** The body is fed in three pieces, since libcurl may cut it anywhere.
**
** For every input the harness checks what doc/core.md promises: exactly one value
** pushed, a table; ok = true with a page of the documented shape, or ok = false with
** a known kind and (but for "http", where the body may say nothing) a message string.
** A broken promise aborts, which libFuzzer reports as a crash.
**
** The page decode is also held against a plain cjson.decode of the same body (the
** oracle below, in Lua): the scan that cuts null members out of the text before
** decoding must give the same runs, and refuse the same bodies with the same message.
** And the scan's ways of reading the text (plain C, SSE2, AVX2) must agree byte for
** byte, since a processor uses only one of them.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "private.h"

static lua_State *state;

/*
** agree(body, page_or_nil, message) -> nil | what differs. The reference is a
** decoder set up as the core's own, and the runs it gives, normalized as doc/core.md
** promises: no null anywhere in a run, integral numbers integers.
*/
static const char ORACLE[] =
  "local cjson = require 'cjson'\n"
  "local reference = cjson.new()\n"
  "reference.decode_max_depth(64)\n"
  "reference.decode_invalid_numbers(false)\n"
  "local function normalized(v)\n"
  "  if type(v) ~= 'table' then\n"
  "    if math.type(v) == 'float' and v >= -2^53 and v <= 2^53 and v == math.floor(v) then\n"
  "      return math.tointeger(v)\n"
  "    end\n"
  "    return v\n"
  "  end\n"
  "  local copy = {}\n"
  "  for k, x in pairs(v) do if x ~= cjson.null then copy[k] = normalized(x) end end\n"
  "  return copy\n"
  "end\n"
  "local function same(a, b)\n"
  "  if type(a) ~= type(b) or math.type(a) ~= math.type(b) then return false end\n"
  "  if type(a) ~= 'table' then return a == b end\n"
  "  for k, v in pairs(a) do if not same(v, b[k]) then return false end end\n"
  "  for k in pairs(b) do if a[k] == nil then return false end end\n"
  "  return true\n"
  "end\n"
  "return function(body, page, message)\n"
  "  local ok, expected = pcall(reference.decode, body)\n"
  "  if not ok then\n"
  "    if page then return 'a page from a body cjson refuses' end\n"
  "    if message ~= 'invalid JSON: ' .. expected then return 'another message: ' .. message end\n"
  "    return nil\n"
  "  end\n"
  "  if not page then\n"
  "    if message:match '^invalid JSON' then return 'refused what cjson reads' end\n"
  "    return nil\n"
  "  end\n"
  "  local runs = {}\n"
  "  for i, run in ipairs(expected.data.items) do runs[i] = normalized(run) end\n"
  "  if not same(page.items, runs) then return 'runs differ from a plain decode' end\n"
  "end\n";

/* Registry key of the oracle function. */
static const char ORACLE_KEY = 'o';

static void fail(const char *what) {
  fprintf(stderr, "response_fuzzer: %s\n", what);
  abort();
}

static void close_state(void) {
  if (state != NULL) lua_close(state);
  state = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  state = luaL_newstate();
  if (state == NULL) fail("luaL_newstate failed");
  luaL_openlibs(state);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) fail("curl_global_init failed");
  lua_newtable(state);                        /* stands in for the module table */
  wf_decode_open(state);                      /* require "cjson" and a private instance */
  lua_pop(state, 1);
  lua_pushlightuserdata(state, (void *)&ORACLE_KEY);
  if (luaL_dostring(state, ORACLE) != LUA_OK) fail(lua_tostring(state, -1));
  lua_rawset(state, LUA_REGISTRYINDEX);
  atexit(close_state);
  return 0;
}

/* Reads a decimal number at *p (up to end); leaves *p after it. */
static unsigned long long read_number(const uint8_t **p, const uint8_t *end) {
  unsigned long long n = 0;
  while (*p < end && **p >= '0' && **p <= '9') {
    if (n < 1000000000000ULL) n = n * 10 + (unsigned)(**p - '0');
    (*p)++;
  }
  return n;
}

static void skip_spaces(const uint8_t **p, const uint8_t *end) {
  while (*p < end && **p == ' ') (*p)++;
}

/* The line starting at p ends (exclusive of its newline) at the returned pointer. */
static const uint8_t *line_end(const uint8_t *p, const uint8_t *end) {
  const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
  return nl != NULL ? nl : end;
}

static int is_empty_line(const uint8_t *p, const uint8_t *eol) {
  return eol == p || (eol - p == 1 && *p == '\r');
}

/* Fills r from the input; returns the body's start (body runs to the input's end). */
static const uint8_t *read_head(wf_response *r, const uint8_t *data, size_t size) {
  const uint8_t *p = data, *end = data + size, *eol;
  unsigned long long status, code = 0, max_body = 0;
  char status_line[48];

  if (p == end || *p < '0' || *p > '9') {
    wf_response_init(r, 0);
    r->status = 200;
    return data;
  }
  status = read_number(&p, end);
  skip_spaces(&p, end);
  code = read_number(&p, end);
  skip_spaces(&p, end);
  max_body = read_number(&p, end);
  eol = line_end(p, end);
  wf_response_init(r, (size_t)max_body);
  r->status = (long)(status % 1000);
  r->curl_code = (CURLcode)(code % 100);
  if (r->status > 0) {
    snprintf(status_line, sizeof status_line, "HTTP/1.1 %03ld Fuzz\r\n", r->status);
    wf_response_header_line(r, status_line, strlen(status_line));
  }
  p = eol < end ? eol + 1 : end;
  while (p < end) {
    eol = line_end(p, end);
    if (is_empty_line(p, eol)) return eol < end ? eol + 1 : end;
    wf_response_header_line(r, (const char *)p, (size_t)(eol < end ? eol + 1 - p : eol - p));
    p = eol < end ? eol + 1 : end;
  }
  return end;
}

static void feed_body(wf_response *r, const uint8_t *body, size_t len) {
  size_t cuts[3];
  size_t i, at = 0;
  cuts[0] = len / 3;
  cuts[1] = len - len / 3;
  cuts[2] = len;
  for (i = 0; i < 3; i++) {
    if (cuts[i] > at && !wf_response_append(r, (const char *)body + at, cuts[i] - at)) return;
    if (cuts[i] > at) at = cuts[i];
  }
}

static int field_type(lua_State *L, int t, const char *key) {
  int type = wf_getfield(L, t, key);
  lua_pop(L, 1);
  return type;
}

static void check_page(lua_State *L, int page) {
  lua_Integer i, n;
  if (lua_type(L, page) != LUA_TTABLE) fail("page is not a table");
  if (field_type(L, page, "hasMore") != LUA_TBOOLEAN) fail("page.hasMore is not a boolean");
  if (field_type(L, page, "limit") != LUA_TNUMBER) fail("page.limit is not a number");
  if (field_type(L, page, "offset") != LUA_TNUMBER) fail("page.offset is not a number");
  {
    int rid = field_type(L, page, "requestId");
    if (rid != LUA_TNIL && rid != LUA_TSTRING) fail("page.requestId is neither nil nor a string");
  }
  if (wf_getfield(L, page, "items") != LUA_TTABLE) fail("page.items is not a table");
  n = (lua_Integer)lua_rawlen(L, -1);
  for (i = 1; i <= n; i++) {
    if (wf_rawgeti(L, -1, (int)i) != LUA_TTABLE) fail("a run is not a table");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static void check_outcome(lua_State *L, int t) {
  int ok;
  if (lua_type(L, t) != LUA_TTABLE) fail("the outcome is not a table");
  if (field_type(L, t, "ok") != LUA_TBOOLEAN) fail("outcome.ok is not a boolean");
  lua_getfield(L, t, "ok");
  ok = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (ok) {
    lua_getfield(L, t, "page");
    check_page(L, lua_gettop(L));
    lua_pop(L, 1);
    return;
  }
  if (wf_getfield(L, t, "kind") != LUA_TSTRING) fail("outcome.kind is not a string");
  {
    const char *kind = lua_tostring(L, -1);
    int message = field_type(L, t, "message");
    if (strcmp(kind, "http") == 0) {
      if (message != LUA_TNIL && message != LUA_TSTRING) fail("http message is not a string");
    } else if (strcmp(kind, "network") == 0 || strcmp(kind, "timeout") == 0 ||
               strcmp(kind, "decode") == 0) {
      if (message != LUA_TSTRING) fail("outcome.message is not a string");
    } else {
      fail("outcome.kind is not a known kind");
    }
  }
  lua_pop(L, 1);
}

/* Fails unless every way of scanning `body` gives the same text and count. */
static void check_scan_ways(const char *body, size_t len) {
  wf_page_text first, other;
  wf_scan_way way;
  wf_scan_page_text_with(body, len, &first, WF_SCAN_PLAIN);
  for (way = WF_SCAN_SSE2; way <= WF_SCAN_AVX2; way++) {
    wf_scan_page_text_with(body, len, &other, way);
    if (other.members != first.members || other.len != first.len ||
        (other.text == NULL) != (first.text == NULL) ||
        (other.text != NULL && memcmp(other.text, first.text, other.len) != 0))
      fail("the scan's ways of reading the text disagree");
    wf_page_text_free(&other);
  }
  wf_page_text_free(&first);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = state;
  wf_response r;
  const uint8_t *body = read_head(&r, data, size);
  size_t body_len = (size_t)(data + size - body);

  lua_settop(L, 0);
  feed_body(&r, body, body_len);
  wf_push_outcome(L, &r);
  if (lua_gettop(L) != 1) fail("wf_push_outcome did not push exactly one value");
  check_outcome(L, 1);
  lua_settop(L, 0);

  /* The decoders on their own, as core.decode_page and core.decode_envelope call them. */
  if (wf_push_page(L, (const char *)body, body_len, r.request_id)) {
    check_page(L, 1);
  } else if (lua_type(L, 1) != LUA_TSTRING) {
    fail("wf_push_page failed without a message");
  }
  if (lua_gettop(L) != 1) fail("wf_push_page did not push exactly one value");
  check_scan_ways((const char *)body, body_len);
  if (body_len > 0) {
    int is_page = lua_type(L, 1) == LUA_TTABLE;
    lua_pushlightuserdata(L, (void *)&ORACLE_KEY);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushlstring(L, (const char *)body, body_len);
    if (is_page) lua_pushvalue(L, 1); else lua_pushnil(L);
    if (is_page) lua_pushnil(L); else lua_pushvalue(L, 1);
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) fail(lua_tostring(L, -1));
    if (lua_type(L, -1) == LUA_TSTRING) fail(lua_tostring(L, -1));
  }
  lua_settop(L, 0);
  if (wf_push_envelope(L, (const char *)body, body_len) && lua_gettop(L) != 1)
    fail("wf_push_envelope did not push exactly one value");
  lua_settop(L, 0);

  wf_response_free(&r);
  return 0;
}
