# Reliability checks: the suite on a sanitized core, valgrind, and the fuzzer.
# Included from the Makefile; uses its SOURCES, HEADERS, WARNINGS and PKG_CONFIG.
#
#   make test-asan                 the busted suite (lua5.4) on a core built with
#                                  AddressSanitizer and UndefinedBehaviorSanitizer
#   make valgrind                  memcheck of a walk, error paths and broken-off walks
#   make valgrind-core             memcheck of the core's own specs (socket mode driven
#                                  by luv, core.response_outcome, the id set,
#                                  the page decode)
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

# Specs of the C core that valgrind-core runs (busted under memcheck; children such as
# the sandbox run outside it).
VALGRIND_CORE_SPECS = spec/17-id-set_spec.lua spec/21-core-thread_spec.lua \
                      spec/22-core-sockets_spec.lua spec/23-core-response-outcome_spec.lua \
                      spec/24-core-decode-runs_spec.lua spec/24-core-decode-scan_spec.lua

# Specs that helgrind runs: the transfer thread at every moment of a transfer's life.
HELGRIND_SPECS = spec/21-core-thread_spec.lua spec/23-core-response-outcome_spec.lua

.PHONY: setup-reliability test-asan valgrind valgrind-core helgrind fuzz fuzzer

setup-reliability:
	@sh tools/setup.sh $(PACKAGES) $(RELIABILITY_PACKAGES)

# The Lua interpreter is not instrumented, so the ASan runtime is preloaded.
$(ASAN_CORE): $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(ASAN_CC) -O1 -g $(SANITIZE) $(WARNINGS) -fPIC -shared $(LUA54_CFLAGS) $(CURL_CFLAGS) \
	    -o $@ $(SOURCES) $(CURL_LIBS) -lm -pthread

$(FUZZER): fuzz/response_fuzzer.c $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	    -Isrc $(LUA54_CFLAGS) $(CURL_CFLAGS) -o $@ fuzz/response_fuzzer.c $(SOURCES) \
	    $(LUA54_LIBS) $(CURL_LIBS) -lm -pthread

fuzzer: $(FUZZER)

test-asan: setup-reliability $(ASAN_CORE)
	@ASAN_CC=$(ASAN_CC) sh tools/test-asan.sh build/asan

valgrind: setup-reliability
	@$(MAKE) -s LUA=lua5.4 all
	@sh tools/valgrind-check.sh

# Passes when busted reports no failure, memcheck no error and 0 bytes definitely lost.
valgrind-core: setup-reliability
	@$(MAKE) -s LUA=lua5.4 all
	@log=$$(mktemp); out=$$(mktemp); \
	valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
	    --errors-for-leak-kinds=definite --error-exitcode=99 --num-callers=30 \
	    --log-file="$$log" \
	    lua5.4 /usr/bin/busted -o plainTerminal $(VALGRIND_CORE_SPECS) >"$$out" 2>&1; \
	status=$$?; tail -n 20 "$$out"; \
	summary=$$(grep -E '^[0-9]+ successes? / ' "$$out" | tail -n 1 | sed 's/[^0-9 ]//g'); \
	lost=$$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$$log" | tr -d ,); \
	errors=$$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$$log" | tr -d ,); \
	[ -z "$$lost" ] && grep -q 'All heap blocks were freed' "$$log" && lost=0; \
	grep -B 2 -A 25 -E 'Invalid|uninitialised|definitely lost in' "$$log" | head -n 80; \
	echo "valgrind-core: $${lost:-?} bytes definitely lost, $${errors:-?} errors (exit $$status)"; \
	set -- $$summary 0 1 0 0; passed=$$1; failed=$$(($$2 + $$3 + $$4)); \
	[ "$${lost:-x}" = 0 ] && passed=$$((passed + 1)) || failed=$$((failed + 1)); \
	[ "$${errors:-x}" = 0 ] && [ $$status -ne 99 ] && passed=$$((passed + 1)) || failed=$$((failed + 1)); \
	rm -f "$$log" "$$out"; echo "$$passed passed, $$failed failed"; [ $$failed -eq 0 ]

# Passes when busted reports no failure and helgrind no error (a race, a lock order, a
# misuse of the pthread API) beyond tools/helgrind.supp's, which are not ours.
helgrind: setup-reliability
	@$(MAKE) -s LUA=lua5.4 all
	@log=$$(mktemp); out=$$(mktemp); \
	valgrind --tool=helgrind --suppressions=tools/helgrind.supp --error-exitcode=99 \
	    --num-callers=30 --log-file="$$log" \
	    lua5.4 /usr/bin/busted -o plainTerminal $(HELGRIND_SPECS) >"$$out" 2>&1; \
	status=$$?; tail -n 20 "$$out"; \
	summary=$$(grep -E '^[0-9]+ successes? / ' "$$out" | tail -n 1 | sed 's/[^0-9 ]//g'); \
	errors=$$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$$log" | tr -d ,); \
	grep -B 2 -A 30 -E 'Possible data race|lock order|unlocked|Thread #[0-9]+:' "$$log" | head -n 120; \
	echo "helgrind: $${errors:-?} errors (exit $$status)"; \
	set -- $$summary 0 1 0 0; passed=$$1; failed=$$(($$2 + $$3 + $$4)); \
	[ "$${errors:-x}" = 0 ] && [ $$status -ne 99 ] && passed=$$((passed + 1)) || failed=$$((failed + 1)); \
	rm -f "$$log" "$$out"; echo "$$passed passed, $$failed failed"; [ $$failed -eq 0 ]

fuzz: setup-reliability
	@$(MAKE) -s $(FUZZER)
	@sh fuzz/run.sh $(FUZZ_SECONDS)
