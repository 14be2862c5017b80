#!/bin/sh
# Runs every suite -- lint, the sandbox's own tests, the busted specs on every
# installed Lua, the rock built by luarocks -- and ends with one line:
# "N passed, M failed". Exits non-zero when anything failed.
set -u
cd "$(dirname "$0")/.."

LUAS=${LUAS:-"lua5.4 lua5.3 lua5.2 lua5.1 luajit"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
passed=0
failed=0

tally() {  # tally SUITE PASSED FAILED
  echo "== $1: $2 passed, $3 failed"
  passed=$((passed + $2))
  failed=$((failed + $3))
}

check() {  # check NAME COMMAND...: one test that passes when the command does
  name=$1
  shift
  if "$@" >"$work/check.out" 2>&1; then
    tally "$name" 1 0
  else
    cat "$work/check.out"
    tally "$name" 0 1
  fi
}

# unittest ends with "Ran N tests" and "OK" or "FAILED (failures=F, errors=E)"
run_unittest() {
  python3 -m unittest discover -s sandbox -p 'test_*.py' 2>&1 | tee "$work/unittest.out" | tail -n 25
  total=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\}.*/\1/p' "$work/unittest.out")
  bad=$(sed -n 's/^FAILED (\(.*\))/\1/p' "$work/unittest.out" |
        tr ',' '\n' | sed -n 's/.*\(failures\|errors\)=\([0-9]*\).*/\2/p' |
        awk '{ s += $1 } END { print s + 0 }')
  if [ -z "$total" ]; then
    tally "sandbox (python3)" 0 1
  else
    tally "sandbox (python3)" $((total - bad)) "$bad"
  fi
}

# busted ends with "S successes / F failures / E errors / P pending : T seconds"
run_busted() {  # run_busted LUA CPATH_DIR
  "$1" /usr/bin/busted -o plainTerminal --cpath="$2/?.so" spec 2>&1 | tee "$work/busted.out" | tail -n 40
  summary=$(grep -E '^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$work/busted.out" | tail -n 1)
  if [ -z "$summary" ]; then
    tally "specs ($1)" 0 1
    return
  fi
  set -- "$1" $(echo "$summary" | sed 's/[^0-9 ]//g')
  tally "specs ($1)" "$2" $(($3 + $4 + $5))
}

check "luacheck" luacheck -q lua spec examples bench
run_unittest

for lua in $LUAS; do
  if ! command -v "$lua" >/dev/null 2>&1; then
    echo "== $lua is not installed: skipped"
    continue
  fi
  if ! make -s LUA="$lua" >"$work/build.out" 2>&1; then
    cat "$work/build.out"
    tally "build ($lua)" 0 1
    continue
  fi
  if [ "$lua" = lua5.4 ]; then dir=.; else dir=build/$lua; fi
  run_busted "$lua" "$dir"
done

check "luarocks make" sh tools/rock-smoke.sh "$work/rocks"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
