#!/bin/sh
# Builds the rock with `luarocks make` into a throw-away tree and uses the installed
# copy, not the working tree, to list a page from a fresh sandbox.
set -eu
tree=$1
top=$(cd "$(dirname "$0")/.." && pwd)
# lua-cjson comes from Debian's package, which luarocks' manifests do not list.
luarocks --lua-version=5.4 make --tree="$tree" --deps-mode=none \
  CURL_INCDIR="$(pkg-config --variable=includedir libcurl)" "$top/lua-workflows-scm-1.rockspec" >"$tree.log" 2>&1 ||
  { cat "$tree.log"; exit 1; }
cd "$top"
LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;$top/?.lua;;" \
LUA_CPATH="$tree/lib/lua/5.4/?.so;;" \
  lua5.4 "$top/spec/support/rock_smoke.lua" "$tree"
