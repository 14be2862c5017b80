#!/bin/sh
# Runs every suite -- lint, the sandbox's own tests, the busted specs on every
# installed Lua, the rock built by luarocks -- and ends with one line:
# "N passed, M failed". Exits non-zero when anything failed.
#
# The suites run side by side (TEST_JOBS at a time, default 5): each
# busted process starts its own sandboxes on free ports, and each suite writes to
# a file of its own, shown in a fixed order once all have ended.
#
#   LUAS="lua5.4 luajit" TEST_JOBS=2 sh tools/run-tests.sh
set -u
cd "$(dirname "$0")/.."
. tools/lib.sh

LUAS=${LUAS:-"lua5.4 lua5.3 lua5.2 lua5.1 luajit"}
TEST_JOBS=${TEST_JOBS:-5}          # 0: every suite at once; more than 5 on 2 cores starves the timing specs
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

# launch NAME COMMAND...: runs COMMAND in the background, its output and exit
# status in $work/NAME.out and $work/NAME.rc, once fewer than TEST_JOBS suites
# are running.
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
  pids="$pids $!"
}

# make_room: waits until fewer than TEST_JOBS suites are running. A suite has ended
# when its .rc file exists; polling those (dash has no `wait -n`) lets the next suite
# start as soon as any one ends, not only when the oldest does.
make_room() {
  while :; do
    active=0
    for started_suite in $suites; do   # not `suite`: the callers loop over that name
      [ -e "$work/$started_suite.rc" ] || active=$((active + 1))
    done
    [ "$active" -ge "$TEST_JOBS" ] || return 0
    sleep 1
  done
}

# Each suite, as run in the background.
lint() { luacheck -q lua spec examples bench bin/workflows && sh tools/check-layers.sh; }
sandbox_tests() { python3 -m unittest discover -s sandbox -p 'test_*.py'; }
specs() {  # specs LUA CPATH_DIR FILE...
  lua=$1 dir=$2
  shift 2
  "$lua" /usr/bin/busted -o plainTerminal --cpath="$dir/?.so" "$@"
}

# Which Luas run which specs. Every Lua runs the specs of the library's own Lua code
# (options, errors, decoding, walks, tasks): that is where the Luas differ (integers,
# yields across pcall, closing values, weak tables without ephemerons). The specs of a
# host that embeds its own Lua (nginx and Neovim run LuaJIT whatever runs busted) and
# of the sandbox run once, under lua5.4. The wire faults, retry timings, connect
# timeouts, the walks and watches on the sandbox's live listing (their logic's own
# specs, 18- and 56-watch-options, run everywhere), the secrets in every transport,
# the 10,000-client handles spec and the command run under lua5.4, luajit
# and lua5.2: one Lua with integers, the JIT, and one with floats only (lua5.2 rather
# than lua5.1, whose suite is the longest already: it alone cannot yield across pcall,
# which the specs on every Lua cover).
ONCE="00-sandbox 90-neovim 93-neovim-plugin 93-neovim-watch 95-openresty-calls 95-openresty-tls-phases
  95-openresty-walks 95-openresty-networks 98-careless-nginx 98-careless-nvim 99-openresty-example
  99-openresty-watch 98-production-nginx"
PRIMARY="40-retries 56-watch 57-exact-walks 70-faults-answers 70-faults-stalls-walks 80-secrets-transport 83-connect-timeout 85-handles 96-cli-output 97-cli-exit-codes 97-cli-pipe-terminal-rock 97-cli-runs-page 97-cli-watch"
PRIMARY_LUAS="lua5.4 luajit lua5.2"

# runs_on LUA FILE: whether LUA's suite runs the spec FILE ("hosts": the ONCE specs,
# a suite of their own under lua5.4, so that the longest suite is not also the one
# with every host in it).
runs_on() {
  name=$(basename "$2" _spec.lua)
  case " $(echo $ONCE) " in *" $name "*) [ "$1" = hosts ]; return ;; esac
  [ "$1" != hosts ] || return 1
  case " $PRIMARY " in *" $name "*)
    case " $PRIMARY_LUAS " in *" $1 "*) return 0 ;; esac
    return 1 ;;
  esac
  return 0
}

# specs_for LUA N: the spec files LUA runs, starting N files further on.
specs_for() {
  for file in $(rotated "$2"); do
    if runs_on "$1" "$file"; then echo "$file"; fi
  done
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

# The longest suites first, so that none of them starts last and ends long after the
# others: lua5.4, lua5.2 and LuaJIT run the most specs, the hosts' suite starts nginx
# and Neovim; lint, the sandbox's tests and the rock fill the gaps.
set -- $built
files=$(ls spec/*_spec.lua | wc -l)
order=""
for lua in lua5.4 lua5.2 luajit lua5.1 hosts lua5.3; do
  case " $built " in *" $lua "*) order="$order $lua" ;; esac
  if [ "$lua" = hosts ]; then
    case " $built " in *" lua5.4 "*) order="$order hosts" ;; esac
  fi
done
shift_by=0
for suite in $order; do
  case $suite in
    hosts) dir=. lua=lua5.4 ;;
    lua5.4) dir=. lua=lua5.4 ;;
    *) dir=build/$suite lua=$suite ;;
  esac
  # shellcheck disable=SC2046
  launch "specs-$suite" specs "$lua" "$dir" $(specs_for "$suite" $((shift_by * files / $#)))
  shift_by=$((shift_by + 1))
done
launch lint lint
launch sandbox sandbox_tests
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
