# make bench: walks wf_big with this client and with what users write today, at
# 0, 5 and 20 ms of latency, and inside Neovim blocking and as a task (bench/nvim.sh),
# and writes BENCHMARKS.md (bench/run.sh says how).
# Not part of `make test`: it takes minutes and its figures depend on the machine.

# Debian packages the peers and the measurements need, on top of $(PACKAGES).
BENCH_PACKAGES = lua-socket lua-curl time valgrind gzip
BENCH_SERVER = build/bench/static_server

.PHONY: bench

bench: setup all $(BENCH_SERVER)
	@sh tools/setup.sh $(BENCH_PACKAGES)
	@$(MAKE) -s LUA=luajit
	@sh bench/nvim.sh
	@sh bench/run.sh

# make bench-nvim: only the Neovim rows (bench/nvim.sh, about 2 minutes); replaces
# the "Inside Neovim" section and its targets in BENCHMARKS.md.
.PHONY: bench-nvim

bench-nvim: setup
	@$(MAKE) -s LUA=luajit
	@sh bench/nvim.sh
	@lua5.4 bench/nvim_report.lua build/bench/nvim-samples.tsv BENCHMARKS.md

$(BENCH_SERVER): bench/static_server.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARNINGS) -o $@ bench/static_server.c

# make bench-http2: prefetched pages multiplexed on one HTTP/2 connection (nginx in
# front of the sandbox, which speaks only HTTP/1.1).
.PHONY: bench-http2

bench-http2: setup all
	@sh tools/setup.sh nginx-light
	@sh bench/http2.sh
