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

/* x86-64 with GCC or clang: an AVX2 scan, chosen at run time (see scan_blocks_avx2). */
#if defined(__x86_64__) && defined(WF_SSE2_SCAN) && \
    ((defined(__GNUC__) && __GNUC__ >= 5) || defined(__clang__))
#include <immintrin.h>
#define WF_AVX2_SCAN 1
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

/*
** The scan of a 2xx body before it is decoded (on the transfer thread, where there is
** one). It follows the text as the decoder will: strings with their escapes, and the
** objects and arrays open at each point. Two things come out of it:
**
** - The body without its null members: a member `"name":null` of an object below the
**   envelope's two (the runs, and whatever they hold) is cut out of the text, with one
**   comma. The decoder then never builds it, nor does normalize_runs remove it after:
**   a run's nulls were a third of its decoding. A member is cut only where the text
**   around it is well formed, so that a cut never makes a bad body good, and only
**   where its object has no earlier member of that name: the later member wins in JSON
**   as cjson reads it, and a null after a value must still take the value away.
** - How many members are left whose value is a number, a null, an object or an array,
**   in any object: what normalize_runs compares with what it meets.
**
** It reads 64 bytes at a time into bit masks (a bit per byte): where the quotes,
** colons and brackets are, and what follows each byte. Most members, "name":value
** with a value that is no null, are then counted for the whole block at once; only
** brackets, nulls and members with blanks around their colon are looked at one by one.
*/

/* The index of the lowest and of the highest bit set in x (not 0); how many are set. */
static inline int lowest_bit(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_ctzll(x);
#else
  int i = 0;
  while (!(x & 1)) x >>= 1, i++;
  return i;
#endif
}

static inline int highest_bit(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
  return 63 - __builtin_clzll(x);
#else
  int i = 0;
  while (x >>= 1) i++;
  return i;
#endif
}

static inline int bits_set(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_popcountll(x);
#else
  int n = 0;
  for (; x != 0; x &= x - 1) n++;
  return n;
#endif
}

/* What a byte says about the value it begins. */
enum { COUNTED_VALUE, UNCOUNTED_VALUE, NULL_VALUE, JSON_SPACE };
static const unsigned char VALUE_KIND[256] = {
  ['"'] = UNCOUNTED_VALUE, ['t'] = UNCOUNTED_VALUE, ['f'] = UNCOUNTED_VALUE,
  ['n'] = NULL_VALUE,
  [' '] = JSON_SPACE, ['\t'] = JSON_SPACE, ['\n'] = JSON_SPACE, ['\r'] = JSON_SPACE
};

/*
** Bit i set: byte i of a block of 64 is a quote; a backslash; a colon; a bracket or
** a brace; and byte i + 1 begins a string, true or false; or it is an n or a byte up
** to a space (where the quick count leaves the member to scan_member).
*/
typedef struct block_bits {
  uint64_t quotes, backslashes, colons, brackets, before_uncounted, before_special;
} block_bits;

/* The blocks the scan keeps, for looking back at an object's members from a null. */
#define KEPT_BLOCKS 64

typedef struct text_scan {
  const char *body;
  size_t len;
  char *text;                  /* the text being written, once a member is cut out */
  size_t text_len, copied;     /* the body's bytes before `copied` are in `text` */
  int cut_failed;              /* no memory for `text`: nothing is cut */
  size_t members;
  uint64_t inside_carry;       /* all ones: the block before ended inside a string */
  uint64_t quote_carry;        /* 1: the block before ended with an unescaped quote */
  int escape_carry;            /* the block before ended in an escaping backslash */
  int depth;                   /* containers open */
  int broken;                  /* deeper than decoding goes, or a close with none open */
  uint64_t objects;            /* bit d - 1: the container at depth d is an object */
  size_t opened_at[MAX_JSON_DEPTH + 1];        /* per depth: where its container opened */
  uint64_t kept_quotes[KEPT_BLOCKS];           /* unescaped quotes of the last blocks */
  uint64_t kept_colons[KEPT_BLOCKS];           /* their colons outside strings */
} text_scan;

static inline int is_json_space(char c) {
  return VALUE_KIND[(unsigned char)c] == JSON_SPACE;
}

/* The first byte at or after i that is no blank, or len. */
static inline size_t skip_blanks(const text_scan *s, size_t i) {
  while (i < s->len && is_json_space(s->body[i])) i++;
  return i;
}

/* The last byte before i that is no blank, or (size_t)-1. */
static inline size_t skip_blanks_back(const char *text, size_t i) {
  while (i > 0 && is_json_space(text[i - 1])) i--;
  return i - 1;
}

/* The last unescaped quote before `at` within the blocks kept, or (size_t)-1. */
static size_t quote_before(const text_scan *s, size_t at, size_t block) {
  size_t b = at / 64;
  uint64_t below = s->kept_quotes[b % KEPT_BLOCKS] & (((uint64_t)1 << (at % 64)) - 1);
  for (;;) {
    if (below != 0) return b * 64 + (size_t)highest_bit(below);
    if (b == 0 || block / 64 - (b - 1) >= KEPT_BLOCKS) return (size_t)-1;
    b--;
    below = s->kept_quotes[b % KEPT_BLOCKS];
  }
}

/*
** Bit i set: byte i - k of block b (or of the block before, for i < k) is an unescaped
** quote; 0 < k < 64. The block before must still be kept.
*/
static inline uint64_t quotes_before(const text_scan *s, size_t b, unsigned k) {
  uint64_t q = s->kept_quotes[b % KEPT_BLOCKS] << k;
  if (b > 0) q |= s->kept_quotes[(b - 1) % KEPT_BLOCKS] >> (64 - k);
  return q;
}

/*
** Whether the object open may have a member named body[quote + 1, close) before
** `quote`: a colon after the object's opening brace whose text before ends in that
** name, quoted. A member with blanks before its colon may, and so may one of an object
** inside, or one too far back to be kept: only a cut depends on the answer. The
** colons whose byte length + 2 before is a quote are found for a block at a time.
*/
static int may_have_member(const text_scan *s, size_t quote, size_t close, size_t block) {
  size_t length = close - quote - 1, from = s->opened_at[s->depth] + 1;
  size_t first = from / 64, last = quote / 64, b;
  const char *name = s->body + quote + 1;
  if (block / 64 - first + 1 >= KEPT_BLOCKS || length + 2 >= 64) return 1;
  for (b = first; b <= last; b++) {
    uint64_t colons = s->kept_colons[b % KEPT_BLOCKS], named;
    if (b == first) colons &= ~(uint64_t)0 << (from % 64);
    if (b == last) colons &= ((uint64_t)1 << (quote % 64)) - 1;
    if (colons == 0) continue;
    if (colons & ~quotes_before(s, b, 1)) return 1;   /* blanks before a colon */
    for (named = colons & quotes_before(s, b, (unsigned)length + 2); named != 0;
         named &= named - 1) {
      const char *colon = s->body + b * 64 + lowest_bit(named);
      if (memcmp(colon - 1 - length, name, length) == 0) return 1;
    }
  }
  return 0;
}

/* Copies the body up to `until` into the text; returns 0 when there is no text. */
static int copy_until(text_scan *s, size_t until) {
  if (s->text == NULL) {
    if (s->cut_failed || (s->text = malloc(s->len)) == NULL) {
      s->cut_failed = 1;
      return 0;
    }
  }
  memcpy(s->text + s->text_len, s->body + s->copied, until - s->copied);
  s->text_len += until - s->copied;
  s->copied = until;
  return 1;
}

/*
** Cuts out the member whose name opens at `quote` and whose null ends before `end`;
** `after` is the first byte past the null that is no blank, a comma or a brace.
** Returns 0, cutting nothing, where the text around is not what a well-formed object
** has there: a name after a { or a comma, a name after the comma a cut takes, and
** before the comma a cut takes with a }, a value.
*/
static int cut_null_member(text_scan *s, size_t quote, size_t end, size_t after) {
  size_t before = skip_blanks_back(s->body, quote), last;
  if (before == (size_t)-1 || (s->body[before] != ',' && s->body[before] != '{')) return 0;
  if (s->body[after] == ',') {                /* "name":null, "next" */
    size_t next = skip_blanks(s, after + 1);
    if (next >= s->len || s->body[next] != '"' || !copy_until(s, quote)) return 0;
    s->copied = after + 1;
    return 1;
  }
  /* "name":null } -- the comma written before goes too, or the object is left empty */
  if (!copy_until(s, quote)) return 0;
  last = skip_blanks_back(s->text, s->text_len);
  if (last != (size_t)-1 && s->text[last] == ',') {
    size_t value_end = skip_blanks_back(s->text, last);
    if (value_end == (size_t)-1 || s->text[value_end] == ',' || s->text[value_end] == '{')
      return 0;
    s->text_len = last;
  }
  s->copied = end;
  return 1;
}

/* Whether any of 8 bytes is a control byte, a backslash or not ASCII. */
static inline int has_unplain_byte(uint64_t w) {
  const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
  uint64_t slashes = w ^ (ones * '\\');
  /* the byte tests of "Bit Twiddling Hacks": exact for the word as a whole */
  return ((((w - ones * 0x20) & ~w) |            /* a byte below 0x20 */
           ((w + ones) | w) |                    /* one above 0x7e */
           ((slashes - ones) & ~slashes)) & highs) != 0;  /* a backslash */
}

/*
** Whether a name may go with its member: plain ASCII, no escape and no control byte.
** A name the decoder would refuse must stay for it to refuse.
*/
static int is_plain_name(const char *name, size_t length) {
  size_t i = 0;
  uint64_t w;
  if (length < 8) {
    for (; i < length; i++) {
      unsigned char c = (unsigned char)name[i];
      if (c < 0x20 || c == '\\' || c >= 0x7f) return 0;
    }
    return 1;
  }
  for (; length - i >= 8; i += 8) {             /* 8 bytes at a time */
    memcpy(&w, name + i, 8);
    if (has_unplain_byte(w)) return 0;
  }
  if (i == length) return 1;
  memcpy(&w, name + length - 8, 8);             /* the last 8, some of them seen already */
  return !has_unplain_byte(w);
}

static inline int is_null(const char *p) {
  return p[0] == 'n' && p[1] == 'u' && p[2] == 'l' && p[3] == 'l';
}

/*
** A colon outside strings that the quick count left: blanks around it, or a value
** that begins with n or is cut short. Counts it, or cuts it out.
*/
static void scan_member(text_scan *s, size_t colon, size_t block) {
  const char *body = s->body;
  size_t value = colon + 1, close = colon - 1, quote, after;
  if (value < s->len && is_json_space(body[value])) value = skip_blanks(s, value);
  if (value >= s->len || colon == 0) {
    s->members++;                             /* the decoder refuses it */
    return;
  }
  switch (VALUE_KIND[(unsigned char)body[value]]) {
    case UNCOUNTED_VALUE: return;
    case NULL_VALUE: break;
    default: s->members++; return;
  }
  if (is_json_space(body[close])) close = skip_blanks_back(body, colon);
  after = value + 4;
  if (after < s->len && body[after] != ',' && body[after] != '}') after = skip_blanks(s, after);
  if (s->depth >= 3 && ((s->objects >> (s->depth - 1)) & 1) && after < s->len &&
      is_null(body + value) && (body[after] == ',' || body[after] == '}') &&
      close != (size_t)-1 && body[close] == '"' &&
      (quote = quote_before(s, close, block)) != (size_t)-1 && quote > s->opened_at[s->depth] &&
      is_plain_name(body + quote + 1, close - quote - 1) && !may_have_member(s, quote, close, block) &&
      cut_null_member(s, quote, value + 4, after))
    return;
  s->members++;
}

static void scan_open(text_scan *s, size_t at, char c) {
  if (s->depth == MAX_JSON_DEPTH) {
    s->broken = 1;
    return;
  }
  s->depth++;
  if (c == '{') s->objects |= (uint64_t)1 << (s->depth - 1);
  else s->objects &= ~((uint64_t)1 << (s->depth - 1));
  s->opened_at[s->depth] = at;
}

static void scan_close(text_scan *s) {
  if (s->depth == 0) s->broken = 1;
  else s->depth--;
}

/* The bytes a backslash escapes; `carry`: the block before ended in an escaping one. */
static uint64_t escaped_bits(uint64_t backslashes, int *carry) {
  uint64_t escaped = 0;
  if (*carry) {
    escaped = 1;
    backslashes &= ~(uint64_t)1;
    *carry = 0;
  }
  while (backslashes != 0) {
    int i = lowest_bit(backslashes);
    if (i == 63) {
      *carry = 1;
      break;
    }
    escaped |= (uint64_t)2 << i;
    backslashes &= ~((uint64_t)3 << i);
  }
  return escaped;
}

/* Bit i: an odd number of bits 0..i are set (inside a string, its opening quote included). */
static inline uint64_t prefix_xor(uint64_t x) {
  x ^= x << 1;
  x ^= x << 2;
  x ^= x << 4;
  x ^= x << 8;
  x ^= x << 16;
  x ^= x << 32;
  return x;
}

/*
** The block at `block` (its bytes at p, and the byte after them), given its bits with
** the escaped quotes taken out, and where its strings are. Inlined into each loop.
*/
#if defined(__GNUC__) || defined(__clang__)
__attribute__((always_inline))
#endif
static inline void scan_block(text_scan *s, const unsigned char *p, size_t block,
                              const block_bits *b, uint64_t inside) {
  uint64_t colons = b->colons & ~inside, brackets = b->brackets & ~inside;
  uint64_t quoted = b->quotes << 1 | s->quote_carry;  /* bit i: byte i - 1 is a quote */
  uint64_t quick = colons & quoted & ~b->before_special, slow = colons & ~quick;
  s->quote_carry = b->quotes >> 63;
  s->kept_quotes[block / 64 % KEPT_BLOCKS] = b->quotes;
  s->kept_colons[block / 64 % KEPT_BLOCKS] = colons;
  s->members += (size_t)bits_set(quick & ~b->before_uncounted);
  if ((slow | brackets) == 0) return;
  /* the rest in the order of the text: a null's object is the one open at its colon */
  for (slow |= brackets; slow != 0; slow &= slow - 1) {
    int bit = lowest_bit(slow);
    unsigned char c = p[bit];
    if (c == ':') {
      scan_member(s, block + (size_t)bit, block);
    } else if (c == '{' || c == '[') {
      scan_open(s, block + (size_t)bit, (char)c);
    } else {
      scan_close(s);
    }
    if (s->broken) return;
  }
}

/* The block at `block`: its bytes, or a copy padded with zeros near the body's end. */
static inline const unsigned char *block_bytes(const text_scan *s, size_t block,
                                               unsigned char padded[96]) {
  if (s->len - block > 64) return (const unsigned char *)s->body + block;
  memset(padded, 0, 96);
  memcpy(padded, s->body + block, s->len - block);
  return padded;
}

static inline uint64_t unescaped_quotes(text_scan *s, const block_bits *b) {
  if (b->backslashes != 0 || s->escape_carry)
    return b->quotes & ~escaped_bits(b->backslashes, &s->escape_carry);
  return b->quotes;
}

/* p[0, 64) into bits, one byte at a time; p[64] is read too. */
static void bits_of_64_plain(const unsigned char *p, block_bits *b) {
  int i;
  memset(b, 0, sizeof *b);
  for (i = 0; i < 64; i++) {
    unsigned char c = p[i], folded = c | 0x20, next = p[i + 1];
    b->quotes |= (uint64_t)(c == '"') << i;
    b->backslashes |= (uint64_t)(c == '\\') << i;
    b->colons |= (uint64_t)(c == ':') << i;
    b->brackets |= (uint64_t)(folded == '{' || folded == '}') << i;
    b->before_uncounted |= (uint64_t)(next == '"' || next == 't' || next == 'f') << i;
    b->before_special |= (uint64_t)(next == 'n' || next <= 0x20) << i;
  }
}

#ifdef WF_SSE2_SCAN
/* The same with SSE2, 16 bytes at a time. */
static void bits_of_64_sse2(const unsigned char *p, block_bits *b) {
  int part;
  memset(b, 0, sizeof *b);
  for (part = 0; part < 4; part++) {
    __m128i bytes = _mm_loadu_si128((const __m128i *)(p + 16 * part));
    __m128i next = _mm_loadu_si128((const __m128i *)(p + 16 * part + 1));
    __m128i folded = _mm_or_si128(bytes, _mm_set1_epi8(0x20));   /* [ to {, ] to } */
    __m128i brackets = _mm_or_si128(_mm_cmpeq_epi8(folded, _mm_set1_epi8('{')),
                                    _mm_cmpeq_epi8(folded, _mm_set1_epi8('}')));
    __m128i uncounted = _mm_or_si128(_mm_cmpeq_epi8(next, _mm_set1_epi8('"')),
                                     _mm_or_si128(_mm_cmpeq_epi8(next, _mm_set1_epi8('t')),
                                                  _mm_cmpeq_epi8(next, _mm_set1_epi8('f'))));
    __m128i special = _mm_or_si128(_mm_cmpeq_epi8(next, _mm_set1_epi8('n')),
                                   _mm_cmpeq_epi8(_mm_max_epu8(next, _mm_set1_epi8(0x20)),
                                                  _mm_set1_epi8(0x20)));
    int shift = 16 * part;
    b->quotes |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8('"')))
                 << shift;
    b->backslashes |= (uint64_t)(unsigned)_mm_movemask_epi8(
                          _mm_cmpeq_epi8(bytes, _mm_set1_epi8('\\'))) << shift;
    b->colons |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(':')))
                 << shift;
    b->brackets |= (uint64_t)(unsigned)_mm_movemask_epi8(brackets) << shift;
    b->before_uncounted |= (uint64_t)(unsigned)_mm_movemask_epi8(uncounted) << shift;
    b->before_special |= (uint64_t)(unsigned)_mm_movemask_epi8(special) << shift;
  }
}
#endif

/* The blocks with bits_of_64_sse2 where `sse2` (and the compiler offers it), else plain. */
static void scan_blocks(text_scan *s, int sse2) {
  size_t block;
  for (block = 0; block < s->len && !s->broken; block += 64) {
    unsigned char padded[96];
    const unsigned char *p = block_bytes(s, block, padded);
    block_bits b;
    uint64_t inside;
#ifdef WF_SSE2_SCAN
    if (sse2) bits_of_64_sse2(p, &b);
    else
#endif
      bits_of_64_plain(p, &b);
    b.quotes = unescaped_quotes(s, &b);
    inside = prefix_xor(b.quotes) ^ s->inside_carry;
    s->inside_carry = (uint64_t)0 - (inside >> 63);
    scan_block(s, p, block, &b, inside);
  }
  (void)sse2;
}

#ifdef WF_AVX2_SCAN
/*
** The same with AVX2 where the processor has it (and PCLMUL, whose carry-less multiply
** by all ones is prefix_xor in one instruction): the bits in half the steps.
*/
__attribute__((target("avx2,pclmul,popcnt"))) static void scan_blocks_avx2(text_scan *s) {
  size_t block;
  const __m256i colon = _mm256_set1_epi8(':'), open = _mm256_set1_epi8('{'),
                close = _mm256_set1_epi8('}'), quote = _mm256_set1_epi8('"'),
                backslash = _mm256_set1_epi8('\\'), space = _mm256_set1_epi8(0x20),
                t = _mm256_set1_epi8('t'), f = _mm256_set1_epi8('f'), n = _mm256_set1_epi8('n');
  for (block = 0; block < s->len && !s->broken; block += 64) {
    unsigned char padded[96];
    const unsigned char *p = block_bytes(s, block, padded);
    block_bits b;
    uint64_t inside;
    int half;
    {
      __m256i bytes[2], next[2];
      uint32_t quotes[2], backslashes[2], colons[2], brackets[2], uncounted[2], special[2];
      for (half = 0; half < 2; half++) {
        __m256i folded;
        bytes[half] = _mm256_loadu_si256((const __m256i *)(p + 32 * half));
        next[half] = _mm256_loadu_si256((const __m256i *)(p + 32 * half + 1));
        folded = _mm256_or_si256(bytes[half], space);
        quotes[half] = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes[half], quote));
        backslashes[half] = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes[half], backslash));
        colons[half] = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes[half], colon));
        brackets[half] = (uint32_t)_mm256_movemask_epi8(_mm256_or_si256(
            _mm256_cmpeq_epi8(folded, open), _mm256_cmpeq_epi8(folded, close)));
        uncounted[half] = (uint32_t)_mm256_movemask_epi8(_mm256_or_si256(
            _mm256_cmpeq_epi8(next[half], quote),
            _mm256_or_si256(_mm256_cmpeq_epi8(next[half], t), _mm256_cmpeq_epi8(next[half], f))));
        special[half] = (uint32_t)_mm256_movemask_epi8(_mm256_or_si256(
            _mm256_cmpeq_epi8(next[half], n),
            _mm256_cmpeq_epi8(_mm256_max_epu8(next[half], space), space)));
      }
      b.quotes = (uint64_t)quotes[1] << 32 | quotes[0];
      b.backslashes = (uint64_t)backslashes[1] << 32 | backslashes[0];
      b.colons = (uint64_t)colons[1] << 32 | colons[0];
      b.brackets = (uint64_t)brackets[1] << 32 | brackets[0];
      b.before_uncounted = (uint64_t)uncounted[1] << 32 | uncounted[0];
      b.before_special = (uint64_t)special[1] << 32 | special[0];
    }
    b.quotes = unescaped_quotes(s, &b);
    inside = (uint64_t)_mm_cvtsi128_si64(_mm_clmulepi64_si128(
                 _mm_set_epi64x(0, (long long)b.quotes), _mm_set1_epi8(-1), 0)) ^ s->inside_carry;
    s->inside_carry = (uint64_t)0 - (inside >> 63);
    scan_block(s, p, block, &b, inside);
  }
}
#endif

/* Whether this processor runs scan_blocks_avx2. */
static int has_avx2_scan(void) {
#ifdef WF_AVX2_SCAN
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("pclmul") &&
         __builtin_cpu_supports("popcnt");
#else
  return 0;
#endif
}

void wf_scan_page_text_with(const char *body, size_t len, wf_page_text *out, wf_scan_way way) {
  text_scan scan, *s = &scan;
  s->body = body, s->len = len;
  s->text = NULL, s->text_len = s->copied = 0, s->cut_failed = 0;
  s->members = 0, s->inside_carry = 0, s->quote_carry = 0, s->escape_carry = 0;
  s->depth = 0, s->broken = 0, s->objects = 0;
#ifdef WF_AVX2_SCAN
  if (way == WF_SCAN_AVX2 && has_avx2_scan()) scan_blocks_avx2(s);
  else
#endif
    scan_blocks(s, way != WF_SCAN_PLAIN);
  out->text = NULL, out->len = len, out->members = WF_NEVER_MATCHED;
  if (s->broken) {
    free(s->text);
    return;
  }
  out->members = s->members;
  if (s->text != NULL) {
    memcpy(s->text + s->text_len, body + s->copied, len - s->copied);
    out->text = s->text, out->len = s->text_len + (len - s->copied);
  }
}

void wf_scan_page_text(const char *body, size_t len, wf_page_text *out) {
  wf_scan_page_text_with(body, len, out, has_avx2_scan() ? WF_SCAN_AVX2 : WF_SCAN_SSE2);
}

void wf_page_text_free(wf_page_text *t) {
  free(t->text);
  t->text = NULL;
  t->members = WF_NOT_COUNTED;
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

/* The run fields that hold numbers (API.md's run): the scan has cut out the nulls. */
static const char *const NUMBER_FIELDS[] = { "workflowVersion", "totalCu" };
#define NUMBER_FIELD_COUNT ((int)(sizeof NUMBER_FIELDS / sizeof NUMBER_FIELDS[0]))

/*
** Checks that every run of `items` (at the top) is an object, and normalizes them as
** normalize_table does: first their number fields, counting the numbers and nulls met
** there. The scan counted the members left in the text whose value is a number, a
** null or a nested value; the members of `root` and `data` of those kinds and the
** number fields met are among them. Where the two counts agree, no other member needs
** a look; otherwise every member of every run is visited. A run without a number
** field is checked for being an array only then, an array having none. Returns 0, or
** the index of the first run not an object.
*/
static lua_Integer normalize_runs(lua_State *L, int root, int data, size_t text_members) {
  size_t met = 0;
  int items = lua_gettop(L), keys = items + 1, run = keys + NUMBER_FIELD_COUNT, k;
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, items);
  luaL_checkstack(L, 2 * NUMBER_FIELD_COUNT + 4, "too many runs");
  for (k = 0; k < NUMBER_FIELD_COUNT; k++) lua_pushstring(L, NUMBER_FIELDS[k]);
  for (i = 1; i <= n; i++) {
    int fields = 0;                           /* number fields the run has */
    if (wf_rawgeti(L, items, (int)i) != LUA_TTABLE) break;
    for (k = 0; k < NUMBER_FIELD_COUNT; k++) {  /* the values stay until the settop */
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

/*
** Decodes JSON and checks that it is an object; on failure the message is pushed.
** `text` is the body the scan cut nulls out of, or NULL: it decodes as the body does,
** or fails where the body does; the message then comes from the body, so that it
** names the place in the bytes that arrived.
*/
static int push_object(lua_State *L, const char *body, size_t len, const wf_page_text *text) {
  if (len == 0) {
    lua_pushliteral(L, "response body is empty, expected a JSON object");
    return 0;
  }
  if (!(text != NULL && text->text != NULL ? decode_json(L, text->text, text->len)
                                           : decode_json(L, body, len))) {
    const char *why;
    if (text != NULL && text->text != NULL) {
      lua_pop(L, 1);
      decode_json(L, body, len);
    }
    why = lua_tostring(L, -1);
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
  wf_page_text text;
  int pushed;
  wf_scan_page_text(body, len, &text);
  pushed = wf_push_scanned_page(L, body, len, header_request_id, &text);
  wf_page_text_free(&text);
  return pushed;
}

/* wf_push_page, given what wf_scan_page_text found in the body. */
int wf_push_scanned_page(lua_State *L, const char *body, size_t len,
                         const char *header_request_id, const wf_page_text *text) {
  int root, data;
  lua_Integer i;
  char path[48];

  if (!push_object(L, body, len, text)) return 0;
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
  if ((i = normalize_runs(L, root, data, text->members)) != 0) {
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
  if (!push_object(L, body, len, NULL)) {
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
