#!/bin/bash
# Issue 13: how many receive buffers 2,000 concurrent senders need, per buffer mode. Each row
# starts the engine pinned to CPU 0 with a receive ring of a given shape, drives it for 5 s from
# CPU 1 with 2,000 connections (2 frames in flight each, payloads of 0, 100 and 1500 bytes), and
# reports the -ENOBUFS re-arms (recvs that found the ring empty), the replies, and the engine's RSS.
#
#   cargo build --release -p engine -p loadgen && benches/scripts/buffer_starvation.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/../.."
ENGINE=target/release/engine
LOADGEN=target/release/loadgen
OUT=${1:-/dev/stdout}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for binary in "$ENGINE" "$LOADGEN"; do
  [ -x "$binary" ] || { echo "missing $binary: cargo build --release -p engine -p loadgen" >&2; exit 1; }
done

run() {
  local name=$1; shift
  taskset -c 0 "$ENGINE" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --cores 1 \
    --idle-timeout 30s --read-timeout 30s "$@" > "$TMP/ready" 2> "$TMP/stderr" &
  local pid=$!
  for _ in $(seq 100); do grep -q ready "$TMP/ready" && break; sleep 0.1; done
  grep -q ready "$TMP/ready" || { echo "engine did not start: $(cat "$TMP/stderr")" >&2; kill $pid; exit 1; }
  local listen admin rss_before rss_after enobufs
  listen=$(sed -n 's/.* listen=\([^ ]*\).*/\1/p' "$TMP/ready")
  admin=$(sed -n 's/.* admin=\([^ ]*\).*/\1/p' "$TMP/ready")
  rss_before=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
  taskset -c 1 "$LOADGEN" --target "$listen" --connections 2000 --pipeline 2 \
    --payload 0,100,1500 --duration 5s --quiet --json "$TMP/report.json" > /dev/null 2>&1 \
    || echo "  (loadgen reported a failure in this run)" >> "$OUT"
  rss_after=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
  enobufs=$(curl -s "http://$admin/metrics" | awk '/reason="enobufs"/{print $2}')
  local replies
  replies=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); \
print(d['replies'], d['verification']['lost_replies'], round(d['replies'] / d['duration_s']))" "$TMP/report.json")
  read -r total lost per_s <<< "$replies"
  printf '| %s | %s | %s | %s | %s KB → %s KB |\n' "$name" "$enobufs" "$per_s" "$lost" "$rss_before" "$rss_after" >> "$OUT"
  kill $pid
  wait $pid 2> /dev/null || true
}

{
  echo "2,000 senders, 5 s each, $(date -u '+%F %T') UTC, kernel $(uname -r), commit $(git rev-parse --short HEAD)"
  echo
  echo "| receive ring per core | -ENOBUFS re-arms | replies/s | lost | engine RSS |"
  echo "|---|---|---|---|---|"
} >> "$OUT"
run "whole, 1024 × 16 KiB (16 MiB, the default)"
run "whole, 64 × 16 KiB (1 MiB)" --buffers 64
run "incremental, 16 × 64 KiB (1 MiB)" --buffers 16 --buffer-size 65536 --buffer-mode incremental
run "whole, 16 × 16 KiB (256 KiB)" --buffers 16
run "incremental, 4 × 64 KiB (256 KiB)" --buffers 4 --buffer-size 65536 --buffer-mode incremental
run "whole, 4 × 16 KiB (64 KiB)" --buffers 4
run "incremental, 4 × 16 KiB (64 KiB)" --buffers 4 --buffer-mode incremental
