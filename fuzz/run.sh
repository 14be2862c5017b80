#!/bin/sh
# Runs the response fuzzer for SECONDS (default 60), after replaying every input in
# fuzz/regressions/ (each one a crash found before). New crashes are written to
# fuzz/regressions/ as they are found, so that spec/89-fuzz-regressions_spec.lua
# replays them from then on. Ends with "N passed, M failed": one test per
# regression input, and one for the fuzzing run itself.
#
#   sh fuzz/run.sh [SECONDS]       (make fuzz FUZZ_SECONDS=N builds the fuzzer first)
set -u
cd "$(dirname "$0")/.." || exit 1
. tools/lib.sh
seconds=${1:-60}
fuzzer=${FUZZER:-build/fuzz/response_fuzzer}
[ -x "$fuzzer" ] || make -s fuzzer || { tally "" 0 1; finish; exit; }

work=fuzz/corpus-work
mkdir -p "$work" fuzz/regressions
log=$(mktemp)
trap 'rm -f "$log"' EXIT INT TERM

for input in fuzz/regressions/*; do
  [ -f "$input" ] || continue
  if "$fuzzer" "$input" >"$log" 2>&1; then
    tally "" 1 0
  else
    tail -n 30 "$log"
    echo "fuzz: regression $input fails again"
    tally "" 0 1
  fi
done

# The working corpus grows across runs; the seeds always go in first.
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -dict=fuzz/response.dict -artifact_prefix=fuzz/regressions/ \
  "$work" fuzz/corpus >"$log" 2>&1
status=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
took=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -n 1
if [ "$status" -eq 0 ] && [ -n "$runs" ]; then
  echo "fuzz: ${runs} inputs in ${seconds} s (${took}/s), no crash"
  tally "" 1 0
else
  grep -E -A 40 '==ERROR|runtime error|response_fuzzer:|deadly signal|Test unit written' "$log" | head -n 80
  echo "fuzz: the fuzzer stopped on a crash (exit $status); the input is in fuzz/regressions/"
  tally "" 0 1
fi
finish
