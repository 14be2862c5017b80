# make bench: walks wf_big with this client and with what users write today, at
# 0, 5 and 20 ms of latency, and inside Neovim blocking and as a task (bench/nvim.sh),
# and writes BENCHMARKS.md (bench/run.sh says how).
# Not part of `make test`: it takes minutes and its figures depend on the machine.

# Debian packages the peers and the measurements need, on top of $(PACKAGES).
BENCH_PACKAGES = lua-socket lua-curl time valgrind gzip jq zlib1g-dev
BENCH_SERVER = build/bench/static_server

.PHONY: bench

bench: setup all $(BENCH_SERVER)
	@sh tools/setup.sh $(BENCH_PACKAGES)
	@sh bench/cli.sh $(BENCH_CLI_MD)
	@$(MAKE) -s LUA=luajit
	@sh bench/openresty.sh
	@sh bench/nvim.sh
	@BENCH_CLI_MD=$(BENCH_CLI_MD) sh bench/run.sh

# make bench-openresty: only the OpenResty rows (one nginx worker, 16 walks at a time
# through cosockets and through libcurl, /ping latency beside them), put into
# BENCHMARKS.md in place of their last figures.
.PHONY: bench-openresty

bench-openresty: setup
	@$(MAKE) -s LUA=luajit
	@sh bench/openresty.sh
	@lua5.4 bench/report.lua --section bench/results/openresty.md BENCHMARKS.md

# make bench-nvim: only the Neovim rows (bench/nvim.sh, about 2 minutes); replaces
# the "Inside Neovim" section and its targets in BENCHMARKS.md.
.PHONY: bench-nvim

bench-nvim: setup
	@$(MAKE) -s LUA=luajit
	@sh bench/nvim.sh
	@lua5.4 bench/nvim_report.lua build/bench/nvim-samples.tsv BENCHMARKS.md

$(BENCH_SERVER): bench/static_server.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARNINGS) -o $@ bench/static_server.c -lz

# make bench-http2: prefetched pages multiplexed on one HTTP/2 connection (nginx in
# front of the sandbox, which speaks only HTTP/1.1).
.PHONY: bench-http2

bench-http2: setup all
	@sh tools/setup.sh nginx-light
	@sh bench/http2.sh

# make bench-cli: the command (bin/workflows) against a shell loop of curl and jq, at
# 0 and 20 ms, its time to the first line and its memory on wf_huge (bench/cli.sh).
# `make bench` runs it first and bench/report.lua puts its section into BENCHMARKS.md.
BENCH_CLI_MD = build/bench/cli.md
.PHONY: bench-cli

bench-cli: setup all $(BENCH_SERVER)
	@sh tools/setup.sh $(BENCH_PACKAGES)
	@sh bench/cli.sh $(BENCH_CLI_MD)

# make bench-window: the prefetch window ("auto" against fixed windows) at 0, 5, 20 and
# 100 ms, against a server that answers 429 to one request in 20, and the requests the
# overlapping pages cost (bench/window.sh); writes its section of BENCHMARKS.md.
.PHONY: bench-window

bench-window: setup all $(BENCH_SERVER)
	@sh tools/setup.sh $(BENCH_PACKAGES)
	@sh bench/window.sh
