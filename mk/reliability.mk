# Reliability checks: the suite on a sanitized core, valgrind, and the fuzzer.
# Included from the Makefile; uses its SOURCES, HEADERS, WARNINGS and PKG_CONFIG.
#
#   make test-asan                 the busted suite (lua5.4) on a core built with
#                                  AddressSanitizer and UndefinedBehaviorSanitizer
#   make valgrind                  memcheck of a walk, error paths and broken-off walks
#   make fuzz FUZZ_SECONDS=60      libFuzzer over the response path for that long
#
# Each ends with one line "N passed, M failed" and exits non-zero when M > 0.

ASAN_CC      ?= gcc
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60

# Debian packages these targets need on top of the Makefile's PACKAGES.
RELIABILITY_PACKAGES = gcc clang valgrind libclang-rt-14-dev

SANITIZE      = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
ASAN_CORE     = build/asan/workflows/core.so
FUZZER        = build/fuzz/response_fuzzer
LUA54_CFLAGS  = $(shell $(PKG_CONFIG) --cflags lua5.4 2>/dev/null)
LUA54_LIBS    = $(shell $(PKG_CONFIG) --libs lua5.4 2>/dev/null || echo -llua5.4)

.PHONY: setup-reliability test-asan valgrind fuzz fuzzer

setup-reliability:
	@sh tools/setup.sh $(PACKAGES) $(RELIABILITY_PACKAGES)

# The Lua interpreter is not instrumented, so the ASan runtime is preloaded.
$(ASAN_CORE): $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(ASAN_CC) -O1 -g $(SANITIZE) $(WARNINGS) -fPIC -shared $(LUA54_CFLAGS) $(CURL_CFLAGS) \
	    -o $@ $(SOURCES) $(CURL_LIBS) -lm

$(FUZZER): fuzz/response_fuzzer.c $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	    -Isrc $(LUA54_CFLAGS) $(CURL_CFLAGS) -o $@ fuzz/response_fuzzer.c $(SOURCES) \
	    $(LUA54_LIBS) $(CURL_LIBS) -lm

fuzzer: $(FUZZER)

test-asan: setup-reliability $(ASAN_CORE)
	@ASAN_CC=$(ASAN_CC) sh tools/test-asan.sh build/asan

valgrind: setup-reliability
	@$(MAKE) -s LUA=lua5.4 all
	@sh tools/valgrind-check.sh

fuzz: setup-reliability
	@$(MAKE) -s $(FUZZER)
	@sh fuzz/run.sh $(FUZZ_SECONDS)
