#!/bin/sh
# Compute units per day and status of a workflow's runs, with the `workflows`
# command and awk: the command's TSV is one run per line, whatever the values hold.
#
#   sh examples/cu_by_day.sh [WORKFLOW_ID] [MAX]
#
# Reads WORKFLOWS_BASE_URL and WORKFLOWS_API_TOKEN like the command. Uses the
# checkout's bin/workflows, or $WORKFLOWS_CMD (e.g. an installed `workflows`).
set -eu
cmd=${WORKFLOWS_CMD:-"$(dirname "$0")/../bin/workflows"}
printf 'day\tstatus\ttotalCu\n'
"$cmd" runs "${1:-wf_demo}" --max "${2:-1000}" --format tsv --no-header --quiet \
    --fields startedAt,status,totalCu |
  awk -F'\t' '{ cu[substr($1, 1, 10) "\t" $2] += $3 }
              END { for (key in cu) printf "%s\t%.2f\n", key, cu[key] }' |
  sort
