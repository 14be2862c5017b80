/*
** Layer 0 (decoding) -- may call: nothing
**
** Response bodies to plain Lua tables, through a private lua-cjson instance.
**
** lua-cjson does the parsing; this file validates the shape the API documents and
** fixes up the two things Debian's lua-cjson 2.1 gets wrong for us: it decodes every
** number as a float on Lua 5.3+, and it decodes null as a lightuserdata sentinel.
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "private.h"

#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#include <emmintrin.h>
#define WF_SSE2_SCAN 1
#endif

#if defined(__GNUC__)
#define WF_NOINLINE __attribute__((noinline))
#else
#define WF_NOINLINE
#endif

/* Registry key of the private instance's decode function. */
static const char DECODE_KEY = 'd';

/* Deeper than any page needs; bounds the recursion of normalize_table. */
#define MAX_JSON_DEPTH 64

/* Doubles hold every integer up to 2^53 exactly; past that "integral" means nothing. */
#define MAX_EXACT_INTEGER 9007199254740992.0

/* core.decode_page(body [, header_request_id]) -> page | nil, message */
static int core_decode_page(lua_State *L) {
  size_t len;
  const char *body = luaL_checklstring(L, 1, &len);
  const char *header_request_id = luaL_optstring(L, 2, NULL);
  if (wf_push_page(L, body, len, header_request_id)) return 1;
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

/* core.decode_envelope(body) -> { code, message, requestId } | nil */
static int core_decode_envelope(lua_State *L) {
  size_t len;
  const char *body = luaL_checklstring(L, 1, &len);
  return wf_push_envelope(L, body, len);
}

static const luaL_Reg decode_functions[] = {
  { "decode_page", core_decode_page },
  { "decode_envelope", core_decode_envelope },
  { NULL, NULL }
};

/*
** Loads lua-cjson, makes a private instance with cjson.new() so that no setting of the
** global one leaks into ours (or ours into it), and keeps its decode function in the
** registry. Sets decode_page and decode_envelope in the module table at the top.
*/
int wf_decode_open(lua_State *L) {
  int module = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK)
    return luaL_error(L, "workflows.core needs lua-cjson: %s", lua_tostring(L, -1));
  if (wf_getfield(L, -1, "new") != LUA_TFUNCTION)
    return luaL_error(L, "workflows.core needs lua-cjson 2.1 or later (no cjson.new)");
  lua_call(L, 0, 1);                          /* cjson instance */
  if (wf_getfield(L, -1, "decode_max_depth") == LUA_TFUNCTION) {
    lua_pushinteger(L, MAX_JSON_DEPTH);
    lua_call(L, 1, 0);
  } else {
    lua_pop(L, 1);
  }
  if (wf_getfield(L, -1, "decode_invalid_numbers") == LUA_TFUNCTION) {
    lua_pushboolean(L, 0);                    /* NaN, Infinity and hex are not JSON */
    lua_call(L, 1, 0);
  } else {
    lua_pop(L, 1);
  }
  lua_pushlightuserdata(L, (void *)&DECODE_KEY);
  if (wf_getfield(L, -2, "decode") != LUA_TFUNCTION)
    return luaL_error(L, "workflows.core: lua-cjson has no decode function");
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_settop(L, module);                      /* drop the instance and cjson */
  luaL_setfuncs(L, decode_functions, 0);
  return 0;
}

/* Pushes the decoded body and returns 1, or pushes cjson's message and returns 0. */
static int decode_json(lua_State *L, const char *body, size_t len) {
  lua_pushlightuserdata(L, (void *)&DECODE_KEY);
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_pushlstring(L, body, len);
  return lua_pcall(L, 1, 1, 0) == LUA_OK;
}

static int is_json_null(lua_State *L, int i) {
  return lua_type(L, i) == LUA_TLIGHTUSERDATA;
}

/* A decoded JSON array has keys 1..n only; a decoded object has string keys only. */
static int is_array(lua_State *L, int t) {
  t = lua_absindex(L, t);                     /* callers pass -1; the nil below moves it */
  if (lua_rawlen(L, t) > 0) return 1;
  lua_pushnil(L);
  if (lua_next(L, t)) {
    lua_pop(L, 2);
    return 0;
  }
  return 1;                                   /* [] and {} look alike: call it empty */
}

static const char *json_type_name(lua_State *L, int i) {
  switch (lua_type(L, i)) {
    case LUA_TNONE:
    case LUA_TNIL: return "missing";
    case LUA_TLIGHTUSERDATA: return "null";
    case LUA_TBOOLEAN: return "a boolean";
    case LUA_TNUMBER: return "a number";
    case LUA_TSTRING: return "a string";
    case LUA_TTABLE: return is_array(L, i) ? "an array" : "an object";
    default: return "not JSON";
  }
}

/* The range first, so that the cast is defined (and cheaper than floor). */
static int number_is_integral(lua_Number d) {
  return d >= -MAX_EXACT_INTEGER && d <= MAX_EXACT_INTEGER &&
         d == (lua_Number)(long long)d;
}

/* Member `key` of table t (its value at the top) is null: removes it. */
static void remove_member(lua_State *L, int t, int key) {
  lua_pushvalue(L, key);
  lua_pushnil(L);
  lua_rawset(L, t);
}

/* Member `key` of table t (its value at the top) is a number: an integer if integral. */
static inline void make_integer(lua_State *L, int t, int key) {
#if WF_HAS_INTEGERS
  lua_Number d = lua_tonumber(L, -1);
  if (number_is_integral(d) && !lua_isinteger(L, -1)) {
    lua_pushvalue(L, key);
    lua_pushinteger(L, (lua_Integer)d);
    lua_rawset(L, t);
  }
#else
  (void)L, (void)t, (void)key;
#endif
}

/*
** Rewrites table t in place: null members are removed, integral numbers become
** integers, nested tables likewise. Assigning to existing keys during lua_next is
** allowed, removing them too.
*/
static void normalize_table(lua_State *L, int t) {
  luaL_checkstack(L, 4, "JSON too deep");
  lua_pushnil(L);
  while (lua_next(L, t)) {                    /* key value */
    int key = lua_gettop(L) - 1;
    switch (lua_type(L, -1)) {
      case LUA_TLIGHTUSERDATA: remove_member(L, t, key); break;
      case LUA_TNUMBER: make_integer(L, t, key); break;
      case LUA_TTABLE: normalize_table(L, key + 1); break;
      default: break;
    }
    lua_settop(L, key);
  }
}

/* What a byte says about the value it begins: strings and booleans go uncounted. */
enum { COUNTED_VALUE, UNCOUNTED_VALUE, JSON_SPACE };
static const unsigned char VALUE_KIND[256] = {
  ['"'] = UNCOUNTED_VALUE, ['t'] = UNCOUNTED_VALUE, ['f'] = UNCOUNTED_VALUE,
  [' '] = JSON_SPACE, ['\t'] = JSON_SPACE, ['\n'] = JSON_SPACE, ['\r'] = JSON_SPACE
};

/*
** Whether the colon at `colon` (start < colon < end) may be that of an object member
** whose value is a number, a null, an object or an array: the colon follows a quote
** and precedes neither a quote, t nor f, blanks aside. Every such member's colon
** passes; a colon inside a string ("08:57:58") follows no quote, or an escaped one,
** which only counts too many. A value cjson reads as a number from other bytes
** (NaN, were it allowed) is counted too.
*/
static int is_counted_spaced_member(const unsigned char *start, const unsigned char *end,
                                    const unsigned char *colon) {
  const unsigned char *before = colon - 1, *value = colon + 1;
  while (before > start && VALUE_KIND[*before] == JSON_SPACE) before--;
  if (*before != '"') return 0;
  while (value < end && VALUE_KIND[*value] == JSON_SPACE) value++;
  return value < end && VALUE_KIND[*value] == COUNTED_VALUE;
}

/* The same, the usual colons first: those without blanks around, those inside strings. */
static inline int is_counted_member(const unsigned char *start, const unsigned char *end,
                                    const unsigned char *colon) {
  unsigned char before = colon[-1];
  if (before == '"' && colon + 1 < end) {
    unsigned char kind = VALUE_KIND[colon[1]];
    if (kind != JSON_SPACE) return kind == COUNTED_VALUE;
  } else if (VALUE_KIND[before] != JSON_SPACE) {
    return 0;
  }
  return is_counted_spaced_member(start, end, colon);
}

#ifdef WF_SSE2_SCAN
/* Bit i set: p[i] is a colon, for i in 0..15. */
static inline unsigned colons_in_16(const unsigned char *p) {
  __m128i block = _mm_loadu_si128((const __m128i *)p);
  return (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(block, _mm_set1_epi8(':')));
}

/* Bit i set: p[i] is a colon, for i in 0..63. */
static inline uint64_t colons_in_64(const unsigned char *p) {
  return colons_in_16(p) | (uint64_t)colons_in_16(p + 16) << 16 |
         (uint64_t)colons_in_16(p + 32) << 32 | (uint64_t)colons_in_16(p + 48) << 48;
}
#endif

/*
** The colons of the text that is_counted_member counts. A colon comes every 20 bytes
** or so, and a memchr call per colon costs more than the search itself: where SSE2 is
** at hand (every x86-64), 64 bytes are searched at once and their colons taken lowest
** first, with is_counted_member's test written out. Those blocks end before the last
** byte, so that colon + 1 is inside the text; memchr does the rest, and all of it
** elsewhere. A JSON object's text never begins with a colon: the search starts at its
** second byte. Kept out of line: inlined, it crowds wf_push_page's registers.
*/
WF_NOINLINE static size_t count_text_members(const char *body, size_t len) {
  const unsigned char *start = (const unsigned char *)body, *end = start + len, *p = start + 1;
  size_t count = 0;
#ifdef WF_SSE2_SCAN
  for (; end - p > 64; p += 64) {
    uint64_t found;
    for (found = colons_in_64(p); found != 0; found &= found - 1) {
      const unsigned char *colon = p + (unsigned)__builtin_ctzll(found);
      unsigned kind;
      if (colon[-1] == '"') {
        kind = VALUE_KIND[colon[1]];
        count += kind == COUNTED_VALUE;
        if (kind == JSON_SPACE) count += is_counted_spaced_member(start, end, colon);
      } else if (VALUE_KIND[colon[-1]] == JSON_SPACE) {
        count += is_counted_spaced_member(start, end, colon);
      }
    }
  }
#endif
  while (p < end && (p = memchr(p, ':', (size_t)(end - p))) != NULL) {
    count += is_counted_member(start, end, p);
    p++;
  }
  return count;
}

/* What normalize_runs compares, counted ahead (on the transfer thread). */
size_t wf_count_text_members(const char *body, size_t len) {
  return len > 0 ? count_text_members(body, len) : 0;
}

/* The members of table t whose value is a number, a null or a table. */
static size_t count_table_members(lua_State *L, int t) {
  size_t count = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int type = lua_type(L, -1);
    count += type == LUA_TNUMBER || type == LUA_TLIGHTUSERDATA || type == LUA_TTABLE;
    lua_pop(L, 1);
  }
  return count;
}

/* The run fields that hold numbers or, in practice, nulls (API.md's run). */
static const char *const WATCHED_FIELDS[] = { "workflowVersion", "totalCu", "finishedAt",
                                              "sourceRunId" };
#define WATCHED_COUNT ((int)(sizeof WATCHED_FIELDS / sizeof WATCHED_FIELDS[0]))

/*
** Checks that every run of `items` (at the top) is an object, and normalizes them as
** normalize_table does: first their watched fields, counting the numbers and nulls
** met there. The text tells how many members of its objects hold a number, a null or
** a nested value, or more (a colon inside a string may add one, never take one away);
** the members of `root` and `data` of those kinds and the watched fields met are
** among them. Where the two counts agree, no other member needs a look; otherwise
** every member of every run is visited. A run without any watched field is checked
** for being an array only then, an array having none. Returns 0, or the index of
** the first run not an object.
*/
static lua_Integer normalize_runs(lua_State *L, int root, int data, const char *body,
                                  size_t len, size_t text_members) {
  size_t met = 0;
  int items = lua_gettop(L), keys = items + 1, run = keys + WATCHED_COUNT, k;
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, items);
  luaL_checkstack(L, 2 * WATCHED_COUNT + 4, "too many runs");
  for (k = 0; k < WATCHED_COUNT; k++) lua_pushstring(L, WATCHED_FIELDS[k]);
  for (i = 1; i <= n; i++) {
    int fields = 0;                           /* watched fields the run has */
    if (wf_rawgeti(L, items, (int)i) != LUA_TTABLE) break;
    for (k = 0; k < WATCHED_COUNT; k++) {     /* the values stay until the settop */
      lua_pushvalue(L, keys + k);
      switch (wf_rawget(L, run)) {
        case LUA_TNIL: break;
        case LUA_TLIGHTUSERDATA: fields++, met++, remove_member(L, run, keys + k); break;
        case LUA_TNUMBER: fields++, met++, make_integer(L, run, keys + k); break;
        default: fields++; break;
      }
    }
    if (fields == 0 && lua_rawlen(L, run) > 0) break;  /* an array has no such field */
    lua_settop(L, run - 1);
  }
  lua_settop(L, items);
  if (i <= n) return i;
  met += count_table_members(L, root) + count_table_members(L, data);
  if (text_members == WF_NOT_COUNTED) text_members = count_text_members(body, len);
  if (text_members == met) return 0;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, items, (int)i);
    normalize_table(L, items + 1);
    lua_settop(L, items);
  }
  return 0;
}

/*
** Leaves an integer (or, on Luas without integers, an integral number) at the top
** and returns 1; otherwise pops it, pushes a message about `path` and returns 0.
*/
static int check_integer(lua_State *L, const char *path) {
  lua_Number d;
  if (lua_type(L, -1) == LUA_TNUMBER) {
    if (lua_isinteger(L, -1)) return 1;
    d = lua_tonumber(L, -1);
    if (number_is_integral(d)) {
      lua_pop(L, 1);
      lua_pushinteger(L, (lua_Integer)d);
      return 1;
    }
    lua_pop(L, 1);
    lua_pushfstring(L, "%s is %f, expected an integer", path, (double)d);
    return 0;
  }
  lua_pushfstring(L, "%s is %s, expected an integer", path, json_type_name(L, -1));
  lua_remove(L, -2);
  return 0;
}

/* Pops the value at the top and pushes "<path> is <what it is>, expected <expected>". */
static int wrong_type(lua_State *L, const char *path, const char *expected) {
  lua_pushfstring(L, "%s is %s, expected %s", path, json_type_name(L, -1), expected);
  lua_remove(L, -2);
  return 0;
}

/* An envelope member may be absent or null; present, it must have its type. */
static int check_optional(lua_State *L, int root, const char *key, int type,
                          const char *expected) {
  int actual = wf_getfield(L, root, key);
  if (actual == LUA_TNIL || is_json_null(L, -1) || actual == type) {
    lua_pop(L, 1);
    return 1;
  }
  return wrong_type(L, key, expected);
}

/* Decodes JSON and checks that it is an object; on failure the message is pushed. */
static int push_object(lua_State *L, const char *body, size_t len) {
  if (len == 0) {
    lua_pushliteral(L, "response body is empty, expected a JSON object");
    return 0;
  }
  if (!decode_json(L, body, len)) {
    const char *why = lua_tostring(L, -1);
    lua_pushfstring(L, "invalid JSON: %s", why ? why : "not a string");
    lua_remove(L, -2);
    return 0;
  }
  if (lua_type(L, -1) != LUA_TTABLE || lua_rawlen(L, -1) > 0)
    return wrong_type(L, "response", "a JSON object");
  return 1;
}

/*
** Decodes a 2xx body into the page table: the envelope's `data` object, validated,
** normalized and given `requestId` (the body's, else the header's). Returns 1 with
** the page pushed, or 0 with a message naming what was wrong and where.
*/
int wf_push_page(lua_State *L, const char *body, size_t len,
                 const char *header_request_id) {
  return wf_push_counted_page(L, body, len, header_request_id, WF_NOT_COUNTED);
}

/* wf_push_page, given wf_count_text_members(body, len), or WF_NOT_COUNTED. */
int wf_push_counted_page(lua_State *L, const char *body, size_t len,
                         const char *header_request_id, size_t text_members) {
  int root, data;
  lua_Integer i;
  char path[48];

  if (!push_object(L, body, len)) return 0;
  root = lua_gettop(L);
  if (!check_optional(L, root, "code", LUA_TNUMBER, "an integer") ||
      !check_optional(L, root, "message", LUA_TSTRING, "a string") ||
      !check_optional(L, root, "requestId", LUA_TSTRING, "a string"))
    goto fail;

  if (wf_getfield(L, root, "data") != LUA_TTABLE || lua_rawlen(L, -1) > 0) {
    wrong_type(L, "data", "an object");
    goto fail;
  }
  data = lua_gettop(L);

  if (wf_getfield(L, data, "hasMore") != LUA_TBOOLEAN) {
    wrong_type(L, "data.hasMore", "a boolean");
    goto fail;
  }
  lua_pop(L, 1);
  lua_getfield(L, data, "limit");
  if (!check_integer(L, "data.limit")) goto fail;
  lua_setfield(L, data, "limit");
  lua_getfield(L, data, "offset");
  if (!check_integer(L, "data.offset")) goto fail;
  lua_setfield(L, data, "offset");

  if (wf_getfield(L, data, "items") != LUA_TTABLE || !is_array(L, -1)) {
    wrong_type(L, "data.items", "an array");
    goto fail;
  }
  if ((i = normalize_runs(L, root, data, body, len, text_members)) != 0) {
    wf_rawgeti(L, lua_gettop(L), (int)i);
    snprintf(path, sizeof path, "data.items[%lld]", (long long)i);
    wrong_type(L, path, "an object");
    goto fail;
  }
  lua_pop(L, 1);                              /* items */

  if (wf_getfield(L, root, "requestId") != LUA_TSTRING) {
    lua_pop(L, 1);
    if (header_request_id != NULL && header_request_id[0] != '\0')
      lua_pushstring(L, header_request_id);
    else
      lua_pushnil(L);
  }
  lua_setfield(L, data, "requestId");
  lua_replace(L, root);                       /* the page takes the root's slot */
  return 1;

fail:                                         /* message at the top */
  lua_replace(L, root);
  lua_settop(L, root);
  return 0;
}

/*
** Pushes { code, message, requestId } from an error body and returns 1, or pushes
** nothing and returns 0 when the body is not a JSON object. Members of the wrong
** type are left out rather than failing: an error is being reported already.
*/
int wf_push_envelope(lua_State *L, const char *body, size_t len) {
  int root, envelope;
  if (!push_object(L, body, len)) {
    lua_pop(L, 1);
    return 0;
  }
  root = lua_gettop(L);
  lua_createtable(L, 0, 3);
  envelope = root + 1;
  if (wf_getfield(L, root, "code") == LUA_TNUMBER && check_integer(L, "code"))
    lua_setfield(L, envelope, "code");
  else
    lua_pop(L, 1);
  if (wf_getfield(L, root, "message") == LUA_TSTRING)
    lua_setfield(L, envelope, "message");
  else
    lua_pop(L, 1);
  if (wf_getfield(L, root, "requestId") == LUA_TSTRING)
    lua_setfield(L, envelope, "requestId");
  else
    lua_pop(L, 1);
  lua_remove(L, root);
  return 1;
}
