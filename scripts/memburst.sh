#!/usr/bin/env bash
# Memory given back after a burst: queue 300,000 transient 1 KiB messages
# in a fresh umsd, consume them, and print the RSS every 10 s after.
# Usage: scripts/memburst.sh  (builds umsd and umsbench into a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/umsd" ./cmd/umsd
go build -o "$tmp/umsbench" ./cmd/umsbench
"$tmp/umsd" --data-dir "$tmp/data" --amqp-listen 127.0.0.1:25672 --http-listen 127.0.0.1:25673 \
	--mqtt-listen off --mqtt-ws-listen off --stomp-listen off --stomp-ws-listen off \
	--amqps-listen off --mqtts-listen off --stomps-listen off --https-listen off \
	--mqtt-wss-listen off --stomp-wss-listen off >"$tmp/umsd.log" 2>&1 &
PID=$!
sleep 1.5
rss() { awk '/VmRSS|RssAnon|RssFile/{printf "%s %.1f MB  ", $1, $2/1024}' /proc/$PID/status; }
url=amqp://guest:guest@127.0.0.1:25672/
echo "idle: $(rss)"
"$tmp/umsbench" amqp -url $url -consumers 0 -count 300000 -size 1024 | sed -n 1p
echo "backlog queued: $(rss)"
"$tmp/umsbench" amqp -url $url -publishers 0 -consumers 1 -count 300000 -size 1024 -duration 30s -keep | sed -n 1p
echo "drained: $(rss)"
for i in 1 2 3 4 5 6; do sleep 10; echo "+${i}0s: $(rss)"; done
