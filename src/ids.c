/*
** Layer 0 (run ids) -- may call: nothing
**
** core.id_set(capacity): the ids of the runs a walk handed out, each with the number
** it was handed out under. It remembers at least the last `capacity` ids (and at most
** twice that) in two generations: when the current one is full, the older one is
** emptied and becomes the current one.
**
** Why in C and not in a Lua table: a long walk adds a page of ids at a time to a set
** that has long been old in Lua 5.4's generational collector, and an old table that
** is written to is traversed again at every minor collection: thousands of keys,
** every time. Here the collector sees one userdata. The ids' bytes are copied, so
** the set keeps no run alive.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

#define ID_SET_TYPE "workflows.id_set"

/* Runs take_after_anchor reads ahead of looking their ids up. */
#define TAKE_CHUNK 16

/* A generation's hash table starts this small and doubles, so a short walk stays small. */
#define FIRST_SLOTS 64

typedef struct id_entry {
  uint64_t hash;
  size_t offset, length;       /* the id's bytes in the generation's `bytes` */
  lua_Integer number;
} id_entry;

typedef struct generation {
  id_entry *entries;           /* in the order added */
  size_t count, entries_cap;
  uint64_t *slots;             /* open addressing: 0 empty, else a slot_of() */
  size_t slot_mask;            /* slot count - 1 (a power of two), or 0 before any */
  char *bytes;
  size_t bytes_len, bytes_cap;
} generation;

typedef struct id_set {
  generation current, older;
  size_t capacity;
  uint64_t seed;               /* per set: a server cannot line its ids up on one slot */
  int released;
} id_set;

/* An id, as bytes: strings as they are, numbers and booleans tagged by their type. */
typedef struct id_key {
  const char *bytes;
  size_t length;
  char scratch[64];
} id_key;

static void generation_free(generation *g) {
  free(g->entries);
  free(g->slots);
  free(g->bytes);
  memset(g, 0, sizeof *g);
}

/* Forgets every id and keeps the memory for the next ones. */
static void generation_clear(generation *g) {
  g->count = 0;
  g->bytes_len = 0;
  if (g->slots != NULL) memset(g->slots, 0, (g->slot_mask + 1) * sizeof *g->slots);
}

static uint64_t hash_bytes(uint64_t seed, const char *s, size_t length) {
  const uint64_t multiplier = 0x9E3779B97F4A7C15u;
  uint64_t h = seed ^ (length * multiplier);
  const char *end = s + length;
  uint64_t word;
  for (; end - s >= 8; s += 8) {
    memcpy(&word, s, 8);
    h = (h ^ word) * multiplier;
    h ^= h >> 29;
  }
  if (s < end) {
    /* the last 8 bytes, the ones hashed already among them: a copy of a fixed size
       is a load, where one of the few bytes left would be a call */
    if (length >= 8) {
      memcpy(&word, end - 8, 8);
    } else {
      for (word = 0; s < end; s++) word = word << 8 | (unsigned char)*s;
    }
    h = (h ^ word) * multiplier;
    h ^= h >> 29;
  }
  h *= multiplier;
  return h ^ (h >> 32);
}

/*
** A slot holds its entry's index + 1 in the low half and the high half of the entry's
** hash in the other: a probe passes other ids without reading their entries, which a
** walk's new ids (never found) would otherwise cost a cache miss each.
*/
static uint64_t slot_of(uint64_t hash, uint32_t index_plus_one) {
  return (hash & 0xFFFFFFFF00000000u) | index_plus_one;
}

static uint32_t slot_index_plus_one(uint64_t slot) {
  return (uint32_t)(slot & 0xFFFFFFFFu);
}

static id_entry *generation_find(const generation *g, uint64_t hash, const char *s,
                                 size_t length) {
  size_t i;
  uint64_t slot;
  if (g->count == 0) return NULL;
  for (i = (size_t)hash & g->slot_mask; (slot = g->slots[i]) != 0; i = (i + 1) & g->slot_mask) {
    if (((slot ^ hash) >> 32) == 0) {
      id_entry *e = &g->entries[slot_index_plus_one(slot) - 1];
      if (e->hash == hash && e->length == length &&
          memcmp(g->bytes + e->offset, s, length) == 0)
        return e;
    }
  }
  return NULL;
}

static void place_slot(generation *g, uint64_t hash, uint32_t index_plus_one) {
  size_t i = (size_t)hash & g->slot_mask;
  while (g->slots[i] != 0) i = (i + 1) & g->slot_mask;
  g->slots[i] = slot_of(hash, index_plus_one);
}

/*
** Asks for the slot an id's probe starts at, before it is needed. Unconditional: GCC
** drops a prefetch that sits in a branch of its own.
*/
static void prefetch_slot(const generation *g, uint64_t hash) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(g->slots != NULL ? (const void *)&g->slots[(size_t)hash & g->slot_mask]
                                      : (const void *)g);
#else
  (void)g, (void)hash;
#endif
}

/* Room for one more entry of `length` bytes, keeping the slots at most half full. */
static int generation_reserve(generation *g, size_t length) {
  if (g->count + 1 > g->entries_cap) {
    size_t cap = g->entries_cap ? g->entries_cap * 2 : FIRST_SLOTS / 2;
    id_entry *entries = realloc(g->entries, cap * sizeof *entries);
    if (entries == NULL) return 0;
    g->entries = entries, g->entries_cap = cap;
  }
  if (length > g->bytes_cap - g->bytes_len) {
    size_t cap = g->bytes_cap ? g->bytes_cap : 512;
    char *bytes;
    while (cap - g->bytes_len < length) {
      if (cap > SIZE_MAX / 2) return 0;
      cap *= 2;
    }
    bytes = realloc(g->bytes, cap);
    if (bytes == NULL) return 0;
    g->bytes = bytes, g->bytes_cap = cap;
  }
  if (g->slot_mask == 0 || 2 * (g->count + 1) > g->slot_mask + 1) {
    size_t slots = g->slot_mask ? 2 * (g->slot_mask + 1) : FIRST_SLOTS, i;
    uint64_t *table;
    if (slots > UINT32_MAX) return 0;
    table = calloc(slots, sizeof *table);
    if (table == NULL) return 0;
    free(g->slots);
    g->slots = table, g->slot_mask = slots - 1;
    for (i = 0; i < g->count; i++) place_slot(g, g->entries[i].hash, (uint32_t)(i + 1));
  }
  return 1;
}

static id_set *check_set(lua_State *L) {
  id_set *set = luaL_checkudata(L, 1, ID_SET_TYPE);
  if (set->released) luaL_error(L, "attempt to use a released id set");
  return set;
}

/*
** Reads the id at stack index i into `key`. Returns 0 for a value that is no id (nil,
** a table, a function): such a run is handed out as it is, like one without an id.
*/
static int read_key(lua_State *L, int i, id_key *key) {
  switch (lua_type(L, i)) {
    case LUA_TSTRING:
      key->bytes = lua_tolstring(L, i, &key->length);
      return 1;
    case LUA_TNUMBER: {
      /* tagged, so that no string id equals it; %.17g tells apart what Lua does */
      int n = snprintf(key->scratch, sizeof key->scratch, "\1%.17g", (double)lua_tonumber(L, i));
      key->bytes = key->scratch, key->length = (size_t)n;
      return 1;
    }
    case LUA_TBOOLEAN:
      key->bytes = lua_toboolean(L, i) ? "\2true" : "\2false";
      key->length = strlen(key->bytes);
      return 1;
    default:
      return 0;
  }
}

static id_entry *set_find(const id_set *set, uint64_t hash, const id_key *key) {
  id_entry *e = generation_find(&set->current, hash, key->bytes, key->length);
  return e ? e : generation_find(&set->older, hash, key->bytes, key->length);
}

/*
** Pushes the id of the run at stack index `run` (the string "id" at index `name`)
** and reads it into `key`, as read_key does.
*/
static int read_run_id(lua_State *L, int run, int name, id_key *key) {
  lua_pushvalue(L, name);
  lua_rawget(L, run);
  return read_key(L, lua_gettop(L), key);
}

/* Adds an id known to be absent; raises when memory runs out. */
static void set_add(lua_State *L, id_set *set, uint64_t hash, const id_key *key,
                    lua_Integer number) {
  generation *g = &set->current;
  id_entry *e;
  if (g->count >= set->capacity) {
    generation emptied = set->older;
    set->older = set->current;
    generation_clear(&emptied);
    set->current = emptied;
  }
  if (!generation_reserve(g, key->length)) luaL_error(L, "not enough memory for run ids");
  e = &g->entries[g->count];
  e->hash = hash, e->offset = g->bytes_len, e->length = key->length, e->number = number;
  if (key->length > 0) memcpy(g->bytes + g->bytes_len, key->bytes, key->length);
  g->bytes_len += key->length;
  g->count++;
  place_slot(g, hash, (uint32_t)g->count);
}

/* core.id_set(capacity) -> set */
static int core_id_set(lua_State *L) {
  lua_Integer capacity = luaL_checkinteger(L, 1);
  id_set *set;
  luaL_argcheck(L, capacity >= 1 && capacity <= 1 << 24, 1, "out of range");
  set = wf_newuserdata(L, sizeof *set);
  memset(set, 0, sizeof *set);
  set->capacity = (size_t)capacity;
  set->seed = (uint64_t)(uintptr_t)set * 0xD6E8FEB86659FD93u;
  luaL_setmetatable(L, ID_SET_TYPE);
  return 1;
}

/* set:add(id, number) -> true, or false when id is there already (and nothing changes) */
static int id_set_add(lua_State *L) {
  id_set *set = check_set(L);
  lua_Integer number = luaL_checkinteger(L, 3);
  id_key key;
  uint64_t hash;
  luaL_argcheck(L, read_key(L, 2, &key), 2, "a string, number or boolean expected");
  hash = hash_bytes(set->seed, key.bytes, key.length);
  if (set_find(set, hash, &key) != NULL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  set_add(L, set, hash, &key, number);
  lua_pushboolean(L, 1);
  return 1;
}

/* set:number(id) -> the number it was added under, or nil */
static int id_set_number(lua_State *L) {
  id_set *set = check_set(L);
  id_key key;
  id_entry *e;
  if (!read_key(L, 2, &key)) return 0;
  e = set_find(set, hash_bytes(set->seed, key.bytes, key.length), &key);
  if (e == NULL) return 0;
  lua_pushinteger(L, e->number);
  return 1;
}


/* set:last_known(runs) -> the index of the last run whose id is here, and its number; nil */
static int id_set_last_known(lua_State *L) {
  id_set *set = check_set(L);
  lua_Integer i;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_pushliteral(L, "id");
  for (i = (lua_Integer)lua_rawlen(L, 2); i >= 1; i--) {
    id_key key;
    id_entry *e = NULL;
    if (wf_rawgeti(L, 2, (int)i) == LUA_TTABLE) {   /* 4: the run, 5: its id */
      if (read_run_id(L, 4, 3, &key))
        e = set_find(set, hash_bytes(set->seed, key.bytes, key.length), &key);
    }
    lua_settop(L, 3);
    if (e != NULL) {
      lua_pushinteger(L, i);
      lua_pushinteger(L, e->number);
      return 2;
    }
  }
  return 0;
}

/*
** set:add_runs(runs, first, number) -> added, last_number: adds the ids of runs[first],
** runs[first + 1], ... that are not here, under number + 1, + 2, ...; `added` holds
** the runs added and those without an id, in their order.
*/
static int id_set_add_runs(lua_State *L) {
  id_set *set = check_set(L);
  lua_Integer first = luaL_checkinteger(L, 3), number = luaL_checkinteger(L, 4);
  lua_Integer last, i, count = 0;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 4);
  last = (lua_Integer)lua_rawlen(L, 2);
  if (first < 1) first = 1;
  lua_createtable(L, last >= first && last - first < 1 << 24 ? (int)(last - first + 1) : 0, 0);
  lua_pushliteral(L, "id");                   /* 5: added, 6: "id" */
  for (i = first; i <= last; i++) {
    id_key key;
    int keep = 1;
    wf_rawgeti(L, 2, (int)i);                 /* 7: the run */
    if (lua_type(L, 7) == LUA_TTABLE) {
      if (read_run_id(L, 7, 6, &key)) {       /* 8: its id */
        uint64_t hash = hash_bytes(set->seed, key.bytes, key.length);
        keep = set_find(set, hash, &key) == NULL;
        if (keep) set_add(L, set, hash, &key, ++number);
      }
      lua_settop(L, 7);
    }
    if (keep) lua_rawseti(L, 5, (int)++count);
    else lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_pushinteger(L, number);
  return 2;
}

/* Forgets the entries of the current generation from `count` on, the last added first. */
static void generation_truncate(generation *g, size_t count) {
  while (g->count > count) {
    /*
    ** Linear probing put the last entry in the first empty slot of its probe, and
    ** every later entry that probed past that slot is gone already: emptying it
    ** gives the table back as it was before the entry came.
    */
    id_entry *e = &g->entries[g->count - 1];
    size_t i = (size_t)e->hash & g->slot_mask;
    while (slot_index_plus_one(g->slots[i]) != (uint32_t)g->count) i = (i + 1) & g->slot_mask;
    g->slots[i] = 0;
    g->bytes_len = e->offset;
    g->count--;
  }
}

/* Runs 1 .. moved - 1 of `runs` (at index 2) go back up one place, the anchor (at 5) first. */
static void put_back_anchor(lua_State *L, lua_Integer moved) {
  lua_Integer j;
  for (j = moved - 1; j >= 1; j--) {
    lua_rawgeti(L, 2, (int)j);
    lua_rawseti(L, 2, (int)(j + 1));
  }
  lua_pushvalue(L, 5);
  lua_rawseti(L, 2, 1);
}

/*
** set:take_after_anchor(runs, number) -> last_number | nil
**
** A walk's usual page: it starts on the anchor, the run handed out last (under
** `number`), and every run after it is new. Then this adds their ids under number + 1,
** + 2, ..., takes the anchor out of `runs` (the others move down one place, the runs
** without an id among them) and returns the last number used: one look at each id
** where last_known and add_runs take two, and no new array. Any other page (the anchor
** elsewhere or missing, a run after it already here or listed twice), or one that
** would fill the current generation, is left as it was and gets nil: the caller then
** looks at it with last_known and add_runs.
*/
static int id_set_take_after_anchor(lua_State *L) {
  id_set *set = check_set(L);
  lua_Integer number = luaL_checkinteger(L, 3);
  lua_Integer first, last;
  generation *g = &set->current;
  size_t count_before = g->count;
  id_key key;
  id_entry *anchor = NULL;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 3);
  last = (lua_Integer)lua_rawlen(L, 2);
  if (last < 1 || (size_t)last - 1 > set->capacity - g->count) return 0;
  lua_pushliteral(L, "id");                   /* 4: "id" */
  if (wf_rawgeti(L, 2, 1) == LUA_TTABLE) {    /* 5: the anchor's run, 6: its id */
    if (read_run_id(L, 5, 4, &key))
      anchor = set_find(set, hash_bytes(set->seed, key.bytes, key.length), &key);
  }
  if (anchor == NULL || anchor->number != number) return 0;
  lua_settop(L, 5);
  luaL_checkstack(L, TAKE_CHUNK + 2, "too many runs");
  /*
  ** A chunk of runs at a time: their ids are read and their slots asked for first, so
  ** that the lookups after find them on their way rather than wait for each. The
  ** chunk's runs stay on the stack (6 ..) until they move down one place.
  */
  for (first = 2; first <= last; first += TAKE_CHUNK) {
    id_key keys[TAKE_CHUNK];
    uint64_t hashes[TAKE_CHUNK];
    int has_id[TAKE_CHUNK];
    int n = last - first + 1 < TAKE_CHUNK ? (int)(last - first + 1) : TAKE_CHUNK, k;
    for (k = 0; k < n; k++) {
      has_id[k] = 0;
      if (wf_rawgeti(L, 2, (int)(first + k)) == LUA_TTABLE) {  /* 6 + k: the run */
        has_id[k] = read_run_id(L, 6 + k, 4, &keys[k]);
        lua_pop(L, 1);                        /* the id stays alive in its run */
        if (has_id[k]) {
          hashes[k] = hash_bytes(set->seed, keys[k].bytes, keys[k].length);
          prefetch_slot(&set->current, hashes[k]);
          prefetch_slot(&set->older, hashes[k]);
        }
      }
    }
    for (k = 0; k < n; k++) {
      if (!has_id[k]) continue;
      if (set_find(set, hashes[k], &keys[k]) != NULL) {
        generation_truncate(g, count_before);
        lua_settop(L, 5);
        put_back_anchor(L, first - 1);
        return 0;
      }
      set_add(L, set, hashes[k], &keys[k], ++number);
    }
    for (k = n - 1; k >= 0; k--) lua_rawseti(L, 2, (int)(first + k - 1));  /* pops each */
  }
  lua_pushnil(L);
  lua_rawseti(L, 2, (int)last);
  lua_pushinteger(L, number);
  return 1;
}

/* set:capacity() -> how many ids it remembers at least */
static int id_set_capacity(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_set(L)->capacity);
  return 1;
}

static int id_set_release(lua_State *L) {
  id_set *set = luaL_checkudata(L, 1, ID_SET_TYPE);
  if (!set->released) {
    generation_free(&set->current);
    generation_free(&set->older);
    set->released = 1;
  }
  return 0;
}

static int id_set_tostring(lua_State *L) {
  id_set *set = luaL_checkudata(L, 1, ID_SET_TYPE);
  if (set->released)
    lua_pushliteral(L, ID_SET_TYPE " (released)");
  else
    lua_pushfstring(L, ID_SET_TYPE " (%d ids)",
                    (int)(set->current.count + set->older.count));
  return 1;
}

static const luaL_Reg id_set_methods[] = {
  { "add", id_set_add },
  { "number", id_set_number },
  { "last_known", id_set_last_known },
  { "add_runs", id_set_add_runs },
  { "take_after_anchor", id_set_take_after_anchor },
  { "capacity", id_set_capacity },
  { "release", id_set_release },
  { NULL, NULL }
};

int wf_ids_open(lua_State *L) {
  wf_register_class(L, ID_SET_TYPE, id_set_release, id_set_tostring, id_set_methods);
  lua_pushcfunction(L, core_id_set);
  lua_setfield(L, -2, "id_set");
  return 0;
}
