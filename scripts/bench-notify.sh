#!/usr/bin/env bash
# Notification throughput: runs `umsbench notify` against a umsd started
# here (webhook channel only, limits set high so that every check runs but
# none holds anything back) and prints umsbench's summary line per run
# (JSON=1: its JSON line instead).
#
#   scripts/bench-notify.sh                  # embedded guards
#   REDIS=1 scripts/bench-notify.sh          # guards in a redis-server started here
#   DELAY=50ms WORKERS=256 SCENARIOS=http-batch scripts/bench-notify.sh
#   FLAGS=-dedup REDIS=1 scripts/bench-notify.sh   # with idempotency keys
#
# Settings: SCENARIOS (all; a space-separated subset of the names below),
# RUNS per scenario (3), N notifications per run (20000), WORKERS (webhook
# workers, 64), DELAY (the webhook answers after it; 0), REDIS (0),
# REDIS_PORT (6379), PORT (first of two ports for AMQP and HTTP, 25672),
# FLAGS (more umsbench notify flags), JSON (0).
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIOS=${SCENARIOS:-http-batch http-single amqp}
RUNS=${RUNS:-3}
N=${N:-20000}
WORKERS=${WORKERS:-64}
DELAY=${DELAY:-0}
REDIS=${REDIS:-0}
REDIS_PORT=${REDIS_PORT:-6379}
PORT=${PORT:-25672}
FLAGS=${FLAGS:-}
JSON=${JSON:-0}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT

# name: flags of umsbench notify
declare -A scenario=(
	[http-batch]="-via http -c 16 -batch 100"
	[http-single]="-via http -c 64"
	[amqp]="-via amqp -c 4 -confirm 256"
)

wait_port() {
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	exit 1
}

go build -o "$work/umsbench" ./cmd/umsbench
go build -o "$work/umsd" ./cmd/umsd
redis=()
if [ "$REDIS" = 1 ]; then
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
	wait_port "$REDIS_PORT"
	redis=(--redis-url "redis://127.0.0.1:$REDIS_PORT/0")
fi
"$work/umsd" --data-dir "$work/data" --amqp-listen "127.0.0.1:$PORT" --http-listen "127.0.0.1:$((PORT + 1))" \
	--mqtt-listen off --mqtt-ws-listen off --stomp-listen off --stomp-ws-listen off \
	--webhook-secret s --webhook-allow-http=true --webhook-allow-private=true \
	--notify-workers "webhook=$WORKERS" --notify-rate-limit webhook=1000000/s \
	--notify-recipient-limit webhook=1000000/s "${redis[@]}" 2>"$work/umsd.log" &
wait_port "$PORT"
wait_port $((PORT + 1))

for s in $SCENARIOS; do
	for r in $(seq 1 "$RUNS"); do
		out=$("$work/umsbench" notify -http-url "http://guest:guest@127.0.0.1:$((PORT + 1))" \
			-amqp-url "amqp://guest:guest@127.0.0.1:$PORT/" -n "$N" -delay "$DELAY" ${scenario[$s]} $FLAGS)
		if [ "$JSON" = 1 ]; then
			echo "$out" | tail -n 1
		else
			echo "$s run $r: $(echo "$out" | head -n 1)"
		fi
	done
done
