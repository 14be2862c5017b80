# make soak: careless but legal code (walks broken out of without close(), clients
# never closed, collectgarbage() at any moment, tasks cancelled by timers) on every
# host -- nginx with one worker, standalone luv on lua5.4 and luajit, headless
# Neovim -- for SOAK_SECONDS each, then checks that nothing crashed, wedged or
# leaked (tools/soak/run.sh lists the checks). Ends with "N passed, M failed".
#
#   make soak SOAK_SECONDS=10

SOAK_SECONDS ?= 30

.PHONY: soak

soak: setup
	@$(MAKE) -s LUA=lua5.4 all
	@$(MAKE) -s LUA=luajit all
	@SOAK_SECONDS=$(SOAK_SECONDS) sh tools/soak/run.sh
