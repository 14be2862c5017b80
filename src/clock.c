/*
** Layer 0 (clocks) -- may call: nothing
**
** The clocks: core.now (monotonic), core.time (wall) and core.sleep, and the same
** clocks for the other C files.
*/
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <time.h>

#include "private.h"

double wf_monotonic_seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

double wf_wall_seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static int core_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)wf_monotonic_seconds());
  return 1;
}

static int core_time(lua_State *L) {
  lua_pushnumber(L, (lua_Number)wf_wall_seconds());
  return 1;
}

/* core.sleep(seconds): nanosleep, resumed with what is left when a signal cuts it short. */
static int core_sleep(lua_State *L) {
  lua_Number seconds = luaL_checknumber(L, 1);
  struct timespec left;
  if (!(seconds > 0)) return 0;               /* also NaN */
  if (seconds > 1e9) seconds = 1e9;
  left.tv_sec = (time_t)seconds;
  left.tv_nsec = (long)((seconds - (lua_Number)left.tv_sec) * 1e9);
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
  return 0;
}

static const luaL_Reg clock_functions[] = {
  { "now", core_now },
  { "time", core_time },
  { "sleep", core_sleep },
  { NULL, NULL }
};

/* Sets now, time and sleep in the module table at the top. */
int wf_clock_open(lua_State *L) {
  luaL_setfuncs(L, clock_functions, 0);
  return 0;
}
