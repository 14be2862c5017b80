#!/bin/sh
# Fetches every limit=100 page of the given workflows from a running sandbox, once as
# identity JSON and once gzipped exactly as the sandbox sends it, for static_server:
#
#   sh bench/prerender.sh BASE_URL OUT_DIR WORKFLOW:RUNS...
#
# OUT_DIR/<workflow>/<offset>.json and <offset>.json.gz. Written into a temporary
# directory and renamed at the end, so an interrupted run never leaves half a set.
set -eu
base=$1
out=$2
shift 2
tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT INT TERM

for spec in "$@"; do
  workflow=${spec%%:*}
  runs=${spec#*:}
  mkdir -p "$tmp/$workflow"
  # One curl config per encoding: url/output pairs, fetched 8 at a time.
  offset=0
  : >"$tmp/plain.cfg"
  : >"$tmp/gzip.cfg"
  while [ "$offset" -lt "$runs" ]; do
    url="$base/v1/workflows/$workflow/runs?limit=100&offset=$offset"
    printf 'url = "%s"\noutput = "%s/%s/%d.json"\n' "$url" "$tmp" "$workflow" "$offset" \
      >>"$tmp/plain.cfg"
    printf 'url = "%s"\noutput = "%s/%s/%d.json.gz"\n' "$url" "$tmp" "$workflow" "$offset" \
      >>"$tmp/gzip.cfg"
    offset=$((offset + 100))
  done
  auth="Authorization: Bearer sandbox-token"
  curl -sS --fail --parallel --parallel-max 8 -H "$auth" -K "$tmp/plain.cfg"
  # Without --compressed curl stores the gzip body as it came over the wire.
  curl -sS --fail --parallel --parallel-max 8 -H "$auth" -H "Accept-Encoding: gzip" \
    -K "$tmp/gzip.cfg"
  last=$(( (runs - 1) / 100 * 100 ))
  # The last page must close the listing, the others must not: a cheap check that
  # the set is what the sandbox serves.
  grep -q '"hasMore":false' "$tmp/$workflow/$last.json" || {
    echo "prerender: $workflow page $last does not end the listing" >&2
    exit 1
  }
  gzip -t "$tmp/$workflow/$last.json.gz"
done
rm -f "$tmp/plain.cfg" "$tmp/gzip.cfg"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT INT TERM
