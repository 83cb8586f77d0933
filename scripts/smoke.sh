#!/usr/bin/env bash
# Start the installed greendots on a free loopback port over the bundled demo
# runs, call every endpoint with curl, check status codes and bodies, stop it.
# Exits non-zero on the first check that fails. Usage: scripts/smoke.sh
set -euo pipefail

GREENDOTS=${GREENDOTS:-greendots}
PYTHON=${PYTHON:-python3}
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
log=$(mktemp)
body=$(mktemp)
headers=$(mktemp)

# Two processes: the installed package forks, serves and stops as one server.
"$GREENDOTS" serve --port "$port" --poll-timeout 1 --processes 2 2>"$log" &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    rm -f "$log" "$body" "$headers"
}
trap cleanup EXIT

for _ in $(seq 100); do
    grep -q "listening on" "$log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "smoke: server exited"; exit 1; }
    sleep 0.1
done

failures=0
# check METHOD PATH EXPECTED_STATUS EXPECTED_TEXT [curl options...]
check() {
    local method=$1 path=$2 want=$3 text=$4
    shift 4
    local got
    got=$(curl -sS -o "$body" -D "$headers" -w '%{http_code}' -X "$method" "$@" "$base$path")
    if [[ $got != "$want" ]] || ! grep -qF -- "$text" "$body" "$headers"; then
        echo "FAIL $method $path: status $got (want $want), expected to see: $text"
        head -c 300 "$body"; echo
        failures=$((failures + 1))
    else
        echo "ok   $method $path -> $got"
    fi
}

run=/api/v1/projects/webshop/runs/live-2026-12-01
check GET /api/ 200 "status_poll"
check GET /api/v1/ 200 "status_stream"
check GET /api/v1/version 200 '"version"'
check GET /healthz 200 '"ok"'
check GET /api/v1/projects 200 '"name":"Web shop"'
check GET "/api/v1/projects?runs=1" 200 '"id":"compiler"'
check GET /api/v1/projects/webshop/runs 200 '"pretty_age"'
check GET $run/plan 200 '"worker_count": 3'
check GET $run/status_summary 200 "X-End-Offset"
check GET /api/v1/projects/webshop/runs/nightly-2026-11-30/status_summary 200 '"exception"'
check POST $run/status_poll 200 '"workers_to_check":[0,1]' --data '[0,0,0]'
check POST $run/status_poll 200 '"workers_to_check":[]' --data "$(
    printf '[%s,%s,0]' "$(curl -s "$base$run/status_stream/0" | wc -c)" "$(curl -s "$base$run/status_stream/1" | wc -c)")"
check GET $run/status_stream/0 206 "Content-Range: bytes 10-" -H "Range: bytes=10-"
check HEAD $run/status_stream/0 200 "Accept-Ranges: bytes" -I
check GET $run/status_stream/0 416 '"error"' -H "Range: bytes=99999999-"
check GET /api/v1/projects/webshop/runs/collecting-2026-12-01/plan 404 '"error"'
check GET /api/v1/projects/%2e%2e/runs 404 '"error"'
check GET $run/status_stream/x 404 '"error"'
check POST $run/status_poll 400 '"error"' --data 'not json'
check GET /no/such/path 404 '"error"'

kill -TERM "$pid"
if ! wait "$pid"; then
    echo "FAIL server did not exit cleanly on SIGTERM"
    failures=$((failures + 1))
fi
if ((failures)); then
    echo "smoke: $failures checks failed"
    cat "$log"
    exit 1
fi
echo "smoke: all checks passed"
