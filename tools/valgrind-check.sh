#!/bin/sh
# Valgrind memcheck of lua5.4 running tools/valgrind-walk.lua (a walk, the error
# paths, broken-off walks) against a fresh sandbox, on the core `make` builds.
# Passes when every check of the script passes, memcheck reports no error (invalid
# reads and writes, uses of uninitialised values, bad frees) and 0 bytes are
# definitely lost. Ends with one line "N passed, M failed".
set -u
cd "$(dirname "$0")/.." || exit 1
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
tries=0
until grep -qs '^listening ' "$work/ready"; do
  tries=$((tries + 1))
  if [ "$tries" -gt 100 ] || ! kill -0 "$server" 2>/dev/null; then
    cat "$work/ready" >&2
    echo "valgrind: the sandbox did not start"
    echo "0 passed, 1 failed"
    exit 1
  fi
  sleep 0.1
done
url=$(sed -n 's/^listening //p' "$work/ready")

SANDBOX_URL=$url LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="./?.so;;" \
  valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --error-exitcode=99 --track-origins=yes \
    --num-callers=30 --suppressions=tools/valgrind.supp --log-file="$work/memcheck.log" \
    lua5.4 tools/valgrind-walk.lua >"$work/checks.out" 2>&1
status=$?

cat "$work/checks.out"
passed=$(grep -c '^ok ' "$work/checks.out")
failed=$(grep -c '^not ok ' "$work/checks.out")
if [ $((passed + failed)) -eq 0 ]; then
  echo "valgrind: the script ran no check (exit $status)"
  failed=1
fi

lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$work/memcheck.log" | tr -d ,)
errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$work/memcheck.log" | tr -d ,)
# With nothing lost at all, valgrind says "All heap blocks were freed" instead.
[ -z "$lost" ] && grep -q 'All heap blocks were freed' "$work/memcheck.log" && lost=0
sed -n '/HEAP SUMMARY/,$p' "$work/memcheck.log" | sed 's/^==[0-9]*== //'
echo "valgrind: ${lost:-?} bytes definitely lost, ${errors:-?} errors (exit $status)"
if [ "${lost:-x}" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
if [ "${errors:-x}" = 0 ] && [ "$status" -ne 99 ]; then
  passed=$((passed + 1))
else
  grep -B 2 -A 25 -E 'Invalid|uninitialised|definitely lost in|Mismatched|free\(\)' \
    "$work/memcheck.log" | head -n 120
  failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
