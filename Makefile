# lua-workflows: build, test and demo.
#
#   make              build workflows/core.so for $(LUA) (default lua5.4)
#   make LUA=luajit   the same for another Lua (lua5.1, luajit, lua5.2, lua5.3, lua5.4)
#   make test         install what is missing, build, run every suite on every Lua
#   make demo         install what is missing, build, start the sandbox, run an example
#   make clean

LUA        ?= lua5.4
PKG_CONFIG ?= pkg-config
CC         ?= cc
CFLAGS     ?= -O2 -g
WARNINGS    = -std=c99 -Wall -Wextra -Wshadow -Wstrict-prototypes -pedantic
LUA_CFLAGS  = $(shell $(PKG_CONFIG) --cflags $(LUA) 2>/dev/null)
CURL_CFLAGS = $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
CURL_LIBS   = $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null || echo -lcurl)

SOURCES = src/core.c src/clock.c src/request.c src/transfer.c src/session.c src/socket.c src/worker.c \
          src/response.c src/decode.c src/ids.c
HEADERS = src/private.h src/compat.h src/socket.h src/worker.h src/transfer.h src/session.h

# The default Lua builds where busted and the examples look (./workflows/core.so);
# the others build under build/<lua>/ so that all of them can coexist.
ifeq ($(LUA),lua5.4)
CORE = workflows/core.so
else
CORE = build/$(LUA)/workflows/core.so
endif

# Debian packages the build, the tests and the demo need.
PACKAGES = pkg-config python3 openssl ca-certificates curl \
           lua5.4 liblua5.4-dev libcurl4-openssl-dev lua-cjson lua-busted luarocks lua-check \
           lua-argparse bsdutils jq \
           lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev \
           luajit2 libluajit2-5.1-dev neovim lua-cqueues \
           nginx-light libnginx-mod-http-lua lua-resty-core

.PHONY: all test demo clean setup check-setup

all: $(CORE)

$(CORE): $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARNINGS) -fPIC -shared $(LUA_CFLAGS) $(CURL_CFLAGS) \
	    -o $@ $(SOURCES) $(CURL_LIBS) -lm -pthread

setup:
	@sh tools/setup.sh $(PACKAGES)

test: setup
	@sh tools/run-tests.sh

demo: setup all
	@sh tools/demo.sh

clean:
	rm -rf workflows build

include mk/reliability.mk
include mk/bench.mk
include mk/soak.mk
