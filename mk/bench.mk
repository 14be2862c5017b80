# make bench: every scenario of bench/bench.lua (walk, window, cli, nvim, openresty,
# http2), each putting its section into BENCHMARKS.md; make bench-SCENARIO runs one
# (bench-walk, bench-window, bench-cli, bench-nvim, bench-openresty, bench-http2).
# BENCH_RUNS=N sets the runs per row (default 5).
# Not part of `make test`: it takes half an hour and its figures depend on the machine.

# Debian packages the peers and the measurements need, on top of $(PACKAGES). A peer
# whose package is missing is shown as skipped.
BENCH_PACKAGES = lua-socket lua-curl time valgrind gzip jq zlib1g-dev
BENCH_SERVER = build/bench/static_server
BENCH_SCENARIOS = walk window cli nvim openresty http2

.PHONY: bench $(BENCH_SCENARIOS:%=bench-%)

bench: setup all $(BENCH_SERVER)
	@sh tools/setup.sh $(BENCH_PACKAGES)
	@$(MAKE) -s LUA=luajit
	@lua5.4 bench/bench.lua $(BENCH_SCENARIOS)

$(BENCH_SCENARIOS:%=bench-%): bench-%: setup all $(BENCH_SERVER)
	@sh tools/setup.sh $(BENCH_PACKAGES)
	@$(MAKE) -s LUA=luajit
	@lua5.4 bench/bench.lua $*

$(BENCH_SERVER): bench/static_server.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARNINGS) -o $@ bench/static_server.c -lz
