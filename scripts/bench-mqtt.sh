#!/usr/bin/env bash
# MQTT throughput and latency: runs `umsbench mqtt` (lean raw MQTT 3.1.1
# clients) against a broker started here, with 16-byte payloads, in the
# scenarios below, one after another, and prints one result line per
# scenario (JSON=1: umsbench's JSON line instead).
#
#   scripts/bench-mqtt.sh                     # UMS (builds cmd/umsd)
#   BROKER=mosquitto scripts/bench-mqtt.sh    # Debian's mosquitto
#
# Mosquitto gets the same bounds as UMS's defaults (256 messages in flight
# per client, 100,000 queued per session) so that neither drops what the
# other keeps, and TCP_NODELAY as UMS has (without it Mosquitto's QoS 1
# acknowledgements wait for delayed ACKs: about 4k msg/s). Settings: DURATION per scenario (10s), PORT (18891),
# SCENARIOS (all; a space-separated subset of the names below), JSON (0).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
PORT=${PORT:-18891}
BROKER=${BROKER:-ums}
JSON=${JSON:-0}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# name: flags of umsbench mqtt
declare -A scenario=(
	[qos0-max]="-qos 0 -pubs 1"
	[qos0-20k]="-qos 0 -pubs 1 -rate 20000"
	[qos1-max]="-qos 1 -pubs 1 -inflight 64"
	[qos1-20k]="-qos 1 -pubs 1 -inflight 64 -rate 20000"
	[qos1-100to1]="-qos 1 -pubs 100 -inflight 64 -rate 1000"
	[qos1-100to1-max]="-qos 1 -pubs 100 -inflight 16"
	[qos2-max]="-qos 2 -pubs 1 -inflight 64"
)
order=(qos0-max qos0-20k qos1-max qos1-20k qos1-100to1 qos1-100to1-max qos2-max)
SCENARIOS=${SCENARIOS:-${order[*]}}

go build -o "$work/umsbench" ./cmd/umsbench
case "$BROKER" in
ums)
	go build -o "$work/umsd" ./cmd/umsd
	"$work/umsd" --data-dir "$work/data" --mqtt-listen 127.0.0.1:$PORT --mqtt-ws-listen off \
		--amqp-listen off --http-listen off --stomp-listen off --stomp-ws-listen off 2>"$work/broker.log" &
	;;
mosquitto)
	printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 256\nmax_queued_messages 100000\nset_tcp_nodelay true\n' \
		"$PORT" >"$work/mosquitto.conf"
	mosquitto -c "$work/mosquitto.conf" 2>"$work/broker.log" &
	;;
*)
	echo "BROKER must be ums or mosquitto" >&2
	exit 2
	;;
esac
pid=$!
for _ in $(seq 1 50); do
	(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
	sleep 0.1
done

pattern='^mqtt '
if [ "$JSON" = 1 ]; then
	pattern='^{'
fi
echo "broker: $BROKER, $DURATION per scenario"
for name in $SCENARIOS; do
	flags=${scenario[$name]:?unknown scenario $name}
	# shellcheck disable=SC2086 # flags is a list of words
	line=$("$work/umsbench" mqtt -addr 127.0.0.1:$PORT -duration "$DURATION" $flags 2>&1 | grep "$pattern" || true)
	rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo '?')
	printf '%-16s %s (broker RSS %s KiB)\n' "$name" "${line:-FAILED}" "$rss"
done
