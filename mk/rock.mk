# The C core as `luarocks make` builds it (lua-workflows-scm-1.rockspec, luarocks'
# "make" back-end); the Makefile does not include this file.
#
# The core is compiled straight into the rock's own lib directory in the tree being
# installed, in one compiler call: nothing is written in the checkout, so neither
# the workflows/core.so that `make` built nor an object file is left behind, and two
# builds into different trees at once share no file. luarocks passes every variable
# below; it copies the Lua modules and the command itself (the rockspec's
# build.install).

SOURCES = src/core.c src/clock.c src/request.c src/transfer.c src/session.c src/socket.c src/worker.c \
          src/response.c src/decode.c src/ids.c

install:
	mkdir -p "$(LIBDIR)/workflows"
	$(CC) $(CFLAGS) -I"$(LUA_INCDIR)" -I"$(CURL_INCDIR)" $(LIBFLAG) \
	    -o "$(LIBDIR)/workflows/core.$(LIB_EXTENSION)" $(SOURCES) -L"$(CURL_LIBDIR)" -lcurl -lm -pthread

.PHONY: install
