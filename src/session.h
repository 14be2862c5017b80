/*
** Layer 4, sessions: what session.c offers core.c. The session itself is session.c's
** alone; no file below it sees one.
*/
#ifndef WORKFLOWS_SESSION_H
#define WORKFLOWS_SESSION_H

#include "compat.h"

int wf_session_open(lua_State *L);

#endif
