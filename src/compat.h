/*
** Every difference between Lua 5.1, LuaJIT, 5.2, 5.3 and 5.4 that the core meets.
** The rest of src/ is written against the 5.4 API and includes only this header.
*/
#ifndef WORKFLOWS_COMPAT_H
#define WORKFLOWS_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM >= 503
#define WF_HAS_INTEGERS 1
#else
#define WF_HAS_INTEGERS 0
#endif

#if LUA_VERSION_NUM < 502

#define LUA_OK 0

#define lua_rawlen(L, i) lua_objlen((L), (i))

static inline int lua_absindex(lua_State *L, int i) {
  return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}

/* LuaJIT 2.1 has these from 5.2 already; its lauxlib.h defines the macro. */
#ifndef luaL_newlibtable
static inline void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}

#define luaL_newlibtable(L, l) lua_createtable((L), 0, sizeof(l) / sizeof((l)[0]) - 1)
#define luaL_newlib(L, l) (luaL_newlibtable(L, l), luaL_setfuncs(L, l, 0))

static inline void luaL_setmetatable(lua_State *L, const char *tname) {
  luaL_getmetatable(L, tname);
  lua_setmetatable(L, -2);
}

#endif /* luaL_newlibtable */

#endif /* LUA_VERSION_NUM < 502 */

/* lua_getfield, lua_rawget and lua_rawgeti return the value's type only from 5.3 on. */
#if LUA_VERSION_NUM >= 503
#define wf_getfield(L, i, k) lua_getfield((L), (i), (k))
#define wf_rawget(L, i) lua_rawget((L), (i))
#define wf_rawgeti(L, i, n) lua_rawgeti((L), (i), (n))
#else
static inline int wf_getfield(lua_State *L, int i, const char *k) {
  lua_getfield(L, i, k);
  return lua_type(L, -1);
}

static inline int wf_rawget(lua_State *L, int i) {
  lua_rawget(L, i);
  return lua_type(L, -1);
}

static inline int wf_rawgeti(lua_State *L, int i, int n) {
  lua_rawgeti(L, i, n);
  return lua_type(L, -1);
}
#endif

#if LUA_VERSION_NUM >= 504
#define wf_newuserdata(L, size) lua_newuserdatauv((L), (size), 0)
#else
#define wf_newuserdata(L, size) lua_newuserdata((L), (size))
#endif

#if !WF_HAS_INTEGERS
#define lua_isinteger(L, i) 0
#endif

#endif
