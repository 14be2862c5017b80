#!/bin/sh
# Runs the busted suite on lua5.4 against the core built with AddressSanitizer
# and UndefinedBehaviorSanitizer (make test-asan builds it into DIR/workflows/core.so).
# Ends with one line "N passed, M failed"; any sanitizer report counts as a failure.
#
#   ASAN_CC=gcc sh tools/test-asan.sh DIR
set -u
cd "$(dirname "$0")/.." || exit 1
. tools/lib.sh
dir=${1:-build/asan}
cc=${ASAN_CC:-gcc}

# lua5.4 is not instrumented, so the runtime must be loaded before anything else.
case $cc in
  *clang*) runtime=$("$cc" -print-file-name=libclang_rt.asan-x86_64.so) ;;
  *) runtime=$("$cc" -print-file-name=libasan.so) ;;
esac
if [ ! -f "$runtime" ]; then
  echo "test-asan: no ASan runtime found for $cc ($runtime)" >&2
  tally "" 0 1
  finish
  exit
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT INT TERM

# Leaks are valgrind's job (the interpreter is not instrumented, so LeakSanitizer
# would report the allocations of lua5.4 and python3 that live until exit).
# Child processes (the sandbox, lua children of the specs) inherit the preload;
# they run uninstrumented code and only carry the runtime along.
# Left out: the specs that run the core only in other processes (headless Neovim,
# nginx, the command: those load the uninstrumented LuaJIT build or a fresh
# interpreter; 98-careless-nginx, 98-careless-nvim, 98-production-nginx and the
# 99- example specs too: under the preload, nginx never answers the example's /watch
# stream), the HTTP/1.1 parser (no C), and the specs
# of the Lua layer's own logic that wait on clocks (exact-walk properties, watches):
# the C paths they take are the other specs' too.
LD_PRELOAD=$runtime \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1:exitcode=86 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  timeout "${ASAN_TIMEOUT:-600}" lua5.4 /usr/bin/busted -o plainTerminal --cpath="$dir/?.so" \
    --exclude-pattern="9[03-7]%-" --exclude-pattern="57%-" \
    --exclude-pattern="56%-watch" --exclude-pattern="98%-production" \
    --exclude-pattern="98%-careless%-n" --exclude-pattern="99%-" spec >"$out" 2>&1
tail -n 40 "$out"

counts=$(busted_counts "$out")
[ -n "$counts" ] || echo "test-asan: busted did not finish (a sanitizer may have stopped it)"
tally_from "" "$counts"
reports=$(grep -c -E 'ERROR: AddressSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer' "$out")
if [ "$reports" -gt 0 ]; then
  grep -E -A 30 'ERROR: AddressSanitizer|runtime error:' "$out" | head -n 80
  echo "test-asan: $reports sanitizer report(s)"
  tally "" 0 1
fi
finish
