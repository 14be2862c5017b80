#!/bin/sh
# Builds the rock with `luarocks make` into a throw-away tree, checks that the build
# left the checkout as it was (the core `make` built, no object files), and uses the
# installed copy, not the working tree, to list a page from a fresh sandbox: through
# the library, and through the installed command with no LUA_PATH or LUA_CPATH.
set -eu
tree=$1
top=$(cd "$(dirname "$0")/.." && pwd)
core=$top/workflows/core.so
marker=$tree.marker
: >"$marker"
before=$(cksum <"$core" 2>/dev/null || echo none)
# lua-cjson comes from Debian's package, which luarocks' manifests do not list.
luarocks --lua-version=5.4 make --tree="$tree" --deps-mode=none \
  CURL_INCDIR="$(pkg-config --variable=includedir libcurl)" "$top/lua-workflows-scm-1.rockspec" >"$tree.log" 2>&1 ||
  { cat "$tree.log"; exit 1; }
after=$(cksum <"$core" 2>/dev/null || echo none)
objects=$(find "$top/src" -name '*.o' -newer "$marker")
rm -f "$marker"
if [ "$before" != "$after" ]; then echo "luarocks make replaced $core"; exit 1; fi
if [ -n "$objects" ]; then echo "luarocks make left object files behind: $objects"; exit 1; fi
cd "$top"
LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;$top/?.lua;;" \
LUA_CPATH="$tree/lib/lua/5.4/?.so;;" \
  lua5.4 "$top/spec/support/rock_smoke.lua" "$tree"
