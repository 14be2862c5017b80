#!/bin/sh
# Rebuilds the seed corpus (fuzz/corpus/) from a fresh sandbox: real pages and the
# answer to every fault the sandbox can inject, each written in the harness's input
# format (see response_fuzzer.c): "STATUS CURLCODE MAX_BODY", the header lines, an
# empty line, the body. CURLCODE is curl's exit status, which is the CURLcode the
# library reported; the sandbox's random request ids make every run differ a little.
set -eu
cd "$(dirname "$0")/.."
. tools/lib.sh
out=fuzz/corpus
work=$(mktemp -d)
python3 sandbox/server.py --port 0 >"$work/ready" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT INT TERM
url=$(listening_url "$server" "$work/ready")
mkdir -p "$out"

# seed NAME MAX_BODY ID [QUERY [TOKEN [CURL OPTIONS...]]]; TOKEN "-" sends none
seed() {
  name=$1 max_body=$2 id=$3 query=${4:-} token=${5:-sandbox-token}
  if [ $# -ge 5 ]; then shift 5; else shift $#; fi
  path=$(printf '%s' "$id" | sed 's/;/%3B/g; s/=/%3D/g')
  auth="Authorization: Bearer $token"
  [ "$token" = - ] && auth="X-No-Token: 1"
  code=0
  curl -sS --max-time 3 -H "$auth" -H 'Accept: application/json' \
    -D "$work/head" -o "$work/body" "$@" "$url/v1/workflows/$path/runs$query" 2>/dev/null || code=$?
  touch "$work/head" "$work/body"
  status=$(sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p' "$work/head")
  {
    printf '%s %s %s\n' "${status:-0}" "$code" "$max_body"
    sed -n '2,$p' "$work/head" | sed '/^\r*$/d'
    printf '\r\n'
    cat "$work/body"
  } >"$out/$name"
  rm -f "$work/head" "$work/body"
}

seed page-demo-first 0 wf_demo "?limit=5"
seed page-demo-100 0 wf_demo "?limit=100&offset=100"
seed page-demo-last 0 wf_demo "?limit=100&offset=200"
seed page-demo-failure 0 wf_demo "?status=failure&limit=20"
seed page-demo-default 0 wf_demo ""
seed page-empty 0 wf_empty ""
seed page-big 0 wf_big "?limit=3&offset=19998"
seed page-live 0 "wf_demo;live=3;n=corpus" "?limit=4"
seed error-404 0 wf_nope ""
seed error-400-limit 0 wf_demo "?limit=500"
seed error-400-status 0 wf_demo "?status=broken"
seed error-400-directive 0 "wf_demo;status=99" ""
seed error-401-missing 0 wf_demo "" -
seed error-401-invalid 0 wf_demo "" nope
seed fault-status-429 0 "wf_demo;status=429;retry_after=2" ""
seed fault-status-500 0 "wf_demo;status=500" ""
seed fault-status-503-date 0 "wf_demo;status=503;retry_after_date=30" ""
seed fault-status-503-bad-retry 0 "wf_demo;status=503;retry_after=soon" ""
seed fault-status-204 0 "wf_demo;status=204" ""
seed fault-invalid-json 0 "wf_demo;fault=invalid_json" "?limit=3"
seed fault-wrong-shape 0 "wf_demo;fault=wrong_shape" "?limit=3"
seed fault-wrong-shape-empty 0 "wf_empty;fault=wrong_shape" ""
seed fault-html 0 "wf_demo;fault=html" ""
seed fault-short 0 "wf_demo;fault=short" "?limit=3"
seed fault-reset 0 "wf_demo;fault=reset" "?limit=3"
seed fault-drip 0 "wf_demo;fault=drip;drip_ms=0" "?limit=1"
seed fault-silent 0 "wf_demo;fault=silent" "" sandbox-token --max-time 0.3
seed fault-huge 2048 "wf_demo;fault=huge;huge_bytes=4096" "?limit=2"
seed fault-empty-has-more 0 "wf_demo;fault=empty_has_more" ""
seed fault-stuck-offset 0 "wf_demo;fault=stuck_offset" "?limit=2&offset=4"
seed fault-redirect 0 "wf_demo;fault=redirect" ""
echo "$(find "$out" -type f | wc -l) seeds in $out"
