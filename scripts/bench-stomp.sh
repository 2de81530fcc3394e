#!/usr/bin/env bash
# STOMP throughput and latency: runs `umsbench stomp` (go-stomp clients)
# against a broker started here, with 16-byte bodies, in the scenarios
# below, one after another, and prints one result line per scenario
# (JSON=1: umsbench's JSON line instead).
#
#   scripts/bench-stomp.sh                    # UMS (builds cmd/umsd)
#   BROKER=rabbitmq scripts/bench-stomp.sh    # Debian's rabbitmq-server with rabbitmq_stomp
#
# Scenarios: a queue with client-individual acks and prefetch 100 (1 → 1);
# topic fanout to 10 subscribers; persistent SENDs to a durable queue with a
# RECEIPT awaited for each (8 publishers). Settings: DURATION per scenario
# (10s), PORT (18613), SCENARIOS (all; a space-separated subset of the names
# below), JSON (0).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
PORT=${PORT:-18613}
BROKER=${BROKER:-ums}
JSON=${JSON:-0}
work=$(mktemp -d)
cleanup() {
	if [ "$BROKER" = rabbitmq ]; then
		RABBITMQ_NODENAME=umsbench@localhost rabbitmqctl -q stop >/dev/null 2>&1 || true
	fi
	kill $(jobs -p) 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# name: flags of umsbench stomp
declare -A scenario=(
	[queue-ci-prefetch100]="-dest /queue/bench-ci -ack client-individual -prefetch 100"
	[topic-fanout10]="-dest /topic/bench-fanout -consumers 10 -ack auto"
	[persistent-receipt]="-dest /queue/bench-durable -persistent -receipt -publishers 8 -ack client-individual -prefetch 100"
)
order=(queue-ci-prefetch100 topic-fanout10 persistent-receipt)
SCENARIOS=${SCENARIOS:-${order[*]}}

go build -o "$work/umsbench" ./cmd/umsbench
case "$BROKER" in
ums)
	go build -o "$work/umsd" ./cmd/umsd
	"$work/umsd" --data-dir "$work/data" --stomp-listen 127.0.0.1:$PORT --stomp-ws-listen off \
		--amqp-listen off --http-listen off --mqtt-listen off --mqtt-ws-listen off 2>"$work/broker.log" &
	pid=$!
	;;
rabbitmq)
	printf 'stomp.listeners.tcp.1 = 127.0.0.1:%s\nlisteners.tcp.default = 127.0.0.1:%s\nmanagement.tcp.port = %s\n' \
		"$PORT" $((PORT + 1)) $((PORT + 2)) >"$work/rabbitmq.conf"
	echo '[rabbitmq_stomp].' >"$work/enabled_plugins"
	# Debian's wrapper runs the server as the rabbitmq user.
	chmod 755 "$work" && chmod 644 "$work/rabbitmq.conf" "$work/enabled_plugins" && mkdir -m 777 "$work/rabbit"
	RABBITMQ_NODENAME=umsbench@localhost RABBITMQ_CONFIG_FILE="$work/rabbitmq.conf" \
		RABBITMQ_ENABLED_PLUGINS_FILE="$work/enabled_plugins" RABBITMQ_MNESIA_BASE="$work/rabbit/mnesia" \
		RABBITMQ_LOG_BASE="$work/rabbit/log" RABBITMQ_FEATURE_FLAGS_FILE="$work/rabbit/feature_flags" \
		RABBITMQ_DIST_PORT=$((PORT + 3)) \
		rabbitmq-server >"$work/broker.log" 2>&1 &
	;;
*)
	echo "BROKER must be ums or rabbitmq" >&2
	exit 2
	;;
esac
for _ in $(seq 1 600); do
	(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
	sleep 0.1
done
if [ "$BROKER" = rabbitmq ]; then
	pid=$(pgrep -f 'beam.*umsbench' | head -1 || echo "")
fi

pattern='^published '
if [ "$JSON" = 1 ]; then
	pattern='^{'
fi
echo "broker: $BROKER, $DURATION per scenario"
for name in $SCENARIOS; do
	flags=${scenario[$name]:?unknown scenario $name}
	# shellcheck disable=SC2086 # flags is a list of words
	line=$("$work/umsbench" stomp -addr 127.0.0.1:$PORT -duration "$DURATION" $flags 2>&1 | grep "$pattern" || true)
	rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo '?')
	printf '%-22s %s (broker RSS %s KiB)\n' "$name" "${line:-FAILED}" "$rss"
done
