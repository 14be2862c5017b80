# Shell functions shared by the scripts under tools/, bench/, fuzz/ and .ci/run.
# Source it from the repository root: `. tools/lib.sh`. POSIX sh.
#
# Counting: every check script ends with one line "N passed, M failed" and exits
# non-zero when M > 0. They count with `tally`, read the summaries of other tools
# with the *_counts functions, and end with `finish`.

passed=0
failed=0

# tally NAME PASSED FAILED: adds the counts of one suite and prints them as
# "== NAME: P passed, F failed" (no line when NAME is empty).
tally() {
  [ -n "$1" ] && echo "== $1: $2 passed, $3 failed"
  passed=$((passed + $2))
  failed=$((failed + $3))
}

# failure_headlines FILE: for each failed busted test in FILE, its "Failure ->" or
# "Error ->" line, the test's name and the first line of its message; for a failed
# Python test, its "FAIL:" or "ERROR:" line. Recaps use them, so that the tail of a
# long log says what failed.
failure_headlines() {
  awk '/^(Failure|Error) -> / { n = 3 } /^(FAIL|ERROR): / { n = 1 }
       n > 0 { print "   " substr($0, 1, 300); n-- }' "$1"
}

# finish: prints the closing line "N passed, M failed"; its status is the verdict.
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

# busted_counts FILE: "PASSED FAILED" from the summary busted's plainTerminal
# output ends with ("S successes / F failures / E errors / P pending : T seconds");
# errors count as failures. Prints nothing when there is no summary (busted died).
busted_counts() {
  sed -n 's/^\([0-9]*\) successe\{0,1\}s\{0,1\} \/ \([0-9]*\) failures\{0,1\} \/ \([0-9]*\) errors\{0,1\} \/ [0-9]* pending.*/\1 \2 \3/p' "$1" |
    tail -n 1 | awk '{ print $1, $2 + $3 }'
}

# unittest_counts FILE: "PASSED FAILED" from Python unittest's "Ran N tests" and
# "OK" or "FAILED (failures=F, errors=E)". Prints nothing when it did not finish.
unittest_counts() {
  total=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\}.*/\1/p' "$1" | tail -n 1)
  [ -n "$total" ] || return 0
  bad=$(sed -n 's/^FAILED (\(.*\))/\1/p' "$1" |
        tr ',' '\n' | sed -n 's/.*\(failures\|errors\)=\([0-9]*\).*/\2/p' |
        awk '{ s += $1 } END { print s + 0 }')
  echo "$((total - bad)) $bad"
}

# result_counts FILE: "PASSED FAILED" from the last "N passed, M failed" line of
# FILE (the closing line of another check script). Prints nothing without one.
result_counts() {
  grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1 | sed 's/ passed, / /; s/ failed$//'
}

# tally_from NAME COUNTS: tally with "PASSED FAILED" as one of the *_counts
# functions prints it; empty COUNTS (no summary found) counts as one failure.
tally_from() {
  if [ -z "$2" ]; then
    tally "$1" 0 1
  else
    # shellcheck disable=SC2086
    tally "$1" $2
  fi
}

# listening_url PID FILE: waits up to 10 s for FILE to hold the ready line of the
# server PID ("listening URL": the sandbox, the benchmark's static server) and
# prints its URL; fails, showing FILE, if the server dies or stays silent.
listening_url() {
  tries=0
  until grep -qs '^listening ' "$2"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ] || ! kill -0 "$1" 2>/dev/null; then
      cat "$2" >&2
      return 1
    fi
    sleep 0.1
  done
  sed -n 's/^listening //p' "$2"
}
