#!/bin/sh
# Runs every suite -- lint, the sandbox's own tests, the busted specs on every
# installed Lua, the rock built by luarocks -- and ends with one line:
# "N passed, M failed". Exits non-zero when anything failed.
#
# The suites run side by side (TEST_JOBS at a time, default 3): each
# busted process starts its own sandboxes on free ports, and each suite writes to
# a file of its own, shown in a fixed order once all have ended.
#
#   LUAS="lua5.4 luajit" TEST_JOBS=2 sh tools/run-tests.sh
set -u
cd "$(dirname "$0")/.."
. tools/lib.sh

LUAS=${LUAS:-"lua5.4 lua5.3 lua5.2 lua5.1 luajit"}
TEST_JOBS=${TEST_JOBS:-3}          # 0: every suite at once; more than 3 on 2 cores starves the timing specs
work=$(mktemp -d)
pids=""
cleanup() {
  for pid in $pids; do           # a suite's subshell, and the command it runs
    pkill -TERM -P "$pid" 2>/dev/null
    kill "$pid" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM           # the EXIT trap then stops the suites still running

suites=""                          # names, in the order their results are shown
running=""                         # pids of suites not yet waited for, oldest first

# launch NAME COMMAND...: runs COMMAND in the background, its output and exit
# status in $work/NAME.out and $work/NAME.rc, after waiting for the oldest suite
# when TEST_JOBS are running already.
launch() {
  name=$1
  shift
  [ "$TEST_JOBS" -gt 0 ] && make_room
  suites="$suites $name"
  (
    started=$(date +%s)
    "$@" >"$work/$name.out" 2>&1
    echo $? >"$work/$name.rc"
    echo $(($(date +%s) - started)) >"$work/$name.took"
  ) &
  running="$running $!"
  pids="$pids $!"
}

# make_room: waits for the oldest suite still running while TEST_JOBS are.
make_room() {
  set -- $running
  while [ $# -ge "$TEST_JOBS" ]; do
    wait "$1"
    shift
  done
  running="$*"
}

# Each suite, as run in the background.
lint() { luacheck -q lua spec examples bench && sh tools/check-layers.sh; }
sandbox_tests() { python3 -m unittest discover -s sandbox -p 'test_*.py'; }
specs() {  # specs LUA CPATH_DIR FILE...
  lua=$1 dir=$2
  shift 2
  "$lua" /usr/bin/busted -o plainTerminal --cpath="$dir/?.so" "$@"
}

# rotated N: the spec files, starting N files further on (and wrapping round).
# Each Lua starts at another file, so that the files that keep the CPU busy
# (starting sandboxes, the handles spec's 10,000 clients) are not run by every
# Lua at the same time, while the others mostly wait on the sandbox's delays.
rotated() {
  ls spec/*_spec.lua | awk -v n="$1" '{ file[NR - 1] = $0 }
    END { for (i = 0; i < NR; i++) print file[(i + n) % NR] }'
}
rock() { sh tools/rock-smoke.sh "$work/rocks"; }

# Every core is built first, one after the other: the suites then share nothing
# that is still being written (spec/90-neovim_spec.lua only checks the LuaJIT one).
built=""
for lua in $LUAS; do
  if ! command -v "$lua" >/dev/null 2>&1; then
    echo "== $lua is not installed: skipped"
    continue
  fi
  if make -s LUA="$lua" >"$work/build-$lua.out" 2>&1; then
    built="$built $lua"
  else
    cat "$work/build-$lua.out"
    tally "build ($lua)" 0 1
  fi
done

launch lint lint
launch sandbox sandbox_tests
set -- $built
files=$(ls spec/*_spec.lua | wc -l)
shift_by=0
for lua in $built; do
  if [ "$lua" = lua5.4 ]; then dir=.; else dir=build/$lua; fi
  # shellcheck disable=SC2046
  launch "specs-$lua" specs "$lua" "$dir" $(rotated $((shift_by * files / $#)))
  shift_by=$((shift_by + 1))
done
launch rock rock
wait
pids=""

for name in $suites; do
  out=$work/$name.out
  echo "== $name: took $(cat "$work/$name.took" 2>/dev/null || echo ?) s"
  rc=$(cat "$work/$name.rc" 2>/dev/null || echo 1)
  case $name in
    lint|rock)
      [ "$rc" -eq 0 ] || cat "$out"
      label=luacheck
      [ "$name" = rock ] && label="luarocks make"
      if [ "$rc" -eq 0 ]; then tally "$label" 1 0; else tally "$label" 0 1; fi
      ;;
    sandbox)
      tail -n 25 "$out"
      tally_from "sandbox (python3)" "$(unittest_counts "$out")"
      ;;
    specs-*)
      tail -n 40 "$out"
      tally_from "specs (${name#specs-})" "$(busted_counts "$out")"
      ;;
  esac
done

# What failed, gathered where the end of the log shows it.
for name in $suites; do
  headlines=$(failure_headlines "$work/$name.out")
  [ -n "$headlines" ] && printf '== failed in %s:\n%s\n' "$name" "$headlines"
done

finish
