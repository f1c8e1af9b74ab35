#!/usr/bin/env bash
# nginx as a comparison peer, started like the others: renders nginx.conf.template for PORT
# into a temp prefix, runs nginx there (one worker, master and worker pinned with taskset to
# $CPU, default 0), prints `ready listen=127.0.0.1:PORT` once it answers, and on SIGTERM or
# SIGINT stops nginx and removes the prefix. PORT 0 picks a free port.
# usage: benches/nginx/run.sh PORT
set -euo pipefail

port=${1:?usage: $0 PORT (env CPU: the core to pin to, default 0)}
cpu=${CPU:-0}
here=$(cd "$(dirname "$0")" && pwd)
module=/usr/lib/nginx/modules/ngx_http_js_module.so

if ! command -v nginx >/dev/null || [ ! -f "$module" ]; then
    echo "needs nginx and njs: apt-get install -y nginx libnginx-mod-http-js" >&2
    exit 2
fi
if [ "$port" = 0 ]; then
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi

dir=$(mktemp -d /tmp/peer-nginx.XXXXXX)
cp "$here/baseline.js" "$dir/"
sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" -e "s|@NJS_MODULE@|$module|g" \
    "$here/nginx.conf.template" >"$dir/nginx.conf"

taskset -c "$cpu" nginx -p "$dir/" -c nginx.conf -e stderr -g 'daemon off;' &
pid=$!
cleanup() {
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

for _ in $(seq 200); do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "nginx exited before answering (see above)" >&2
        exit 1
    fi
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/pipeline" 2>/dev/null; then
        echo "ready listen=127.0.0.1:$port"
        wait "$pid"
        exit
    fi
    sleep 0.05
done
echo "nginx did not answer on 127.0.0.1:$port" >&2
exit 1
