# make bench: walks wf_big with this client and with what users write today, at
# 0, 5 and 20 ms of latency, and writes BENCHMARKS.md (bench/run.sh says how).
# Not part of `make test`: it takes minutes and its figures depend on the machine.

# Debian packages the peers and the measurements need, on top of $(PACKAGES).
BENCH_PACKAGES = lua-socket lua-curl time valgrind gzip
BENCH_SERVER = build/bench/static_server

.PHONY: bench

bench: setup all $(BENCH_SERVER)
	@sh tools/setup.sh $(BENCH_PACKAGES)
	@$(MAKE) -s LUA=luajit
	@sh bench/openresty.sh
	@sh bench/run.sh

# make bench-openresty: only the OpenResty rows (one nginx worker, 16 walks at a time
# through cosockets and through libcurl, /ping latency beside them), put into
# BENCHMARKS.md in place of their last figures.
.PHONY: bench-openresty

bench-openresty: setup
	@$(MAKE) -s LUA=luajit
	@sh bench/openresty.sh
	@lua5.4 bench/report.lua --section bench/results/openresty.md BENCHMARKS.md

$(BENCH_SERVER): bench/static_server.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARNINGS) -o $@ bench/static_server.c

# make bench-http2: prefetched pages multiplexed on one HTTP/2 connection (nginx in
# front of the sandbox, which speaks only HTTP/1.1).
.PHONY: bench-http2

bench-http2: setup all
	@sh tools/setup.sh nginx-light
	@sh bench/http2.sh
