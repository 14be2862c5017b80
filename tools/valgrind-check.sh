#!/bin/sh
# Valgrind memcheck of lua5.4 running spec/support/valgrind_walk.lua (a walk, the
# error paths, broken-off walks) against a fresh sandbox, on the core `make` builds.
# Passes when every check of the script passes, memcheck reports no error (invalid
# reads and writes, uses of uninitialised values, bad frees) and 0 bytes are
# definitely lost. No suppressions are needed. Ends with one line "N passed, M failed".
set -u
cd "$(dirname "$0")/.." || exit 1
. tools/lib.sh
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The sandbox runs outside valgrind: only the client is under test.
python3 sandbox/server.py --port 0 >"$work/ready" 2>&1 &
server=$!
if ! url=$(listening_url "$server" "$work/ready"); then
  echo "valgrind: the sandbox did not start"
  tally "" 0 1
  finish
  exit
fi

SANDBOX_URL=$url LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="./?.so;;" \
  valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --error-exitcode=99 --track-origins=yes \
    --num-callers=30 --log-file="$work/memcheck.log" \
    lua5.4 spec/support/valgrind_walk.lua >"$work/checks.out" 2>&1
status=$?

cat "$work/checks.out"
checks_passed=$(grep -c '^ok ' "$work/checks.out")
checks_failed=$(grep -c '^not ok ' "$work/checks.out")
if [ $((checks_passed + checks_failed)) -eq 0 ]; then
  echo "valgrind: the script ran no check (exit $status)"
  checks_failed=1
fi
tally "" "$checks_passed" "$checks_failed"

lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$work/memcheck.log" | tr -d ,)
errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$work/memcheck.log" | tr -d ,)
# With nothing lost at all, valgrind says "All heap blocks were freed" instead.
[ -z "$lost" ] && grep -q 'All heap blocks were freed' "$work/memcheck.log" && lost=0
sed -n '/HEAP SUMMARY/,$p' "$work/memcheck.log" | sed 's/^==[0-9]*== //'
echo "valgrind: ${lost:-?} bytes definitely lost, ${errors:-?} errors (exit $status)"
if [ "${lost:-x}" = 0 ]; then tally "" 1 0; else tally "" 0 1; fi
if [ "${errors:-x}" = 0 ] && [ "$status" -ne 99 ]; then
  tally "" 1 0
else
  grep -B 2 -A 25 -E 'Invalid|uninitialised|definitely lost in|Mismatched|free\(\)' \
    "$work/memcheck.log" | head -n 120
  tally "" 0 1
fi
finish
