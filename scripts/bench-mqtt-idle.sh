#!/usr/bin/env bash
# Connection scale: opens CONNS idle MQTT 3.1.1 (or, with PROTO=stomp,
# STOMP 1.2) connections to a broker started here, spread over PROCS
# `umsbench mqtt|stomp -idle` processes (every process may open at most
# 20,000 files on the machine this was written on), and reports the
# broker's RSS per connection and the connect rate.
#
#   scripts/bench-mqtt-idle.sh              # UMS (builds cmd/umsd)
#   PROTO=stomp scripts/bench-mqtt-idle.sh  # UMS, STOMP connections
#   BROKER=mosquitto scripts/bench-mqtt-idle.sh
#
# Settings: CONNS (19000), PROCS (4), PORT (18890), PROTO (mqtt), SPREAD
# (MQTT only: each client process connects from this many loopback source
# addresses, umsbench mqtt -spread; without it the clients' kernel, looking
# for free ephemeral ports, limits the connect rate).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-19000}
PROCS=${PROCS:-4}
PORT=${PORT:-18890}
BROKER=${BROKER:-ums}
PROTO=${PROTO:-mqtt}
SPREAD=${SPREAD:-0}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

go build -o "$work/umsbench" ./cmd/umsbench
case "$BROKER" in
ums)
	go build -o "$work/umsd" ./cmd/umsd
	if [ "$PROTO" = stomp ]; then
		listen=(--mqtt-listen off --stomp-listen 127.0.0.1:$PORT)
	else
		listen=(--mqtt-listen 127.0.0.1:$PORT --stomp-listen off)
	fi
	"$work/umsd" --data-dir "$work/data" "${listen[@]}" --mqtt-ws-listen off --stomp-ws-listen off \
		--amqp-listen off --http-listen off 2>"$work/broker.log" &
	;;
mosquitto)
	printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$PORT" >"$work/mosquitto.conf"
	mosquitto -c "$work/mosquitto.conf" 2>"$work/broker.log" &
	;;
*)
	echo "BROKER must be ums or mosquitto" >&2
	exit 2
	;;
esac
pid=$!
sleep 1
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
before=$(rss)
start=$(date +%s.%N)
per=$((CONNS / PROCS))
for i in $(seq 1 "$PROCS"); do
	if [ "$PROTO" = stomp ]; then
		"$work/umsbench" stomp -addr 127.0.0.1:$PORT -idle "$per" -hold 600s >"$work/clients$i.log" 2>&1 &
	else
		"$work/umsbench" mqtt -addr 127.0.0.1:$PORT -idle "$per" -prefix "idle$i" -hold 600s -spread "$SPREAD" \
			>"$work/clients$i.log" 2>&1 &
	fi
	clients[i]=$!
done
for i in $(seq 1 "$PROCS"); do
	until grep -q '^READY' "$work/clients$i.log"; do
		if ! kill -0 "${clients[i]}" 2>/dev/null; then
			echo "client process $i failed:" >&2
			cat "$work/clients$i.log" >&2
			exit 1
		fi
		sleep 0.2
	done
done
end=$(date +%s.%N)
sleep 3 # let the broker settle (garbage collection)
after=$(rss)
ready=$(awk '/^READY/ {n += $2} END {print n}' "$work"/clients*.log)
echo "broker: $BROKER ($PROTO)"
echo "connections: $ready of $CONNS ($PROCS client processes)"
echo "connect rate: $(echo "$ready / ($end - $start)" | bc) connections/s"
echo "broker RSS: ${before} KiB -> ${after} KiB, $(( (after - before) * 1024 / ready )) bytes per connection"
