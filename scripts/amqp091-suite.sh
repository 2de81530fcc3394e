#!/usr/bin/env bash
# Runs the integration suite shipped with github.com/rabbitmq/amqp091-go
# (build tag "integration") against a freshly built umsd on a free port.
# The suite runs from a temporary copy of the module cache; nothing of it
# enters this repository.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests that cannot pass yet, with the reason (kept in sync with README.md).
SKIP=(
)

work=$(mktemp -d)
cleanup() {
	[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	chmod -R u+w "$work" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/umsd" ./cmd/umsd
moddir=$(go list -m -f '{{.Dir}}' github.com/rabbitmq/amqp091-go)
if [ -z "$moddir" ] || [ ! -d "$moddir" ]; then
	go mod download github.com/rabbitmq/amqp091-go
	moddir=$(go list -m -f '{{.Dir}}' github.com/rabbitmq/amqp091-go)
fi
cp -r "$moddir" "$work/suite"
chmod -R u+w "$work/suite"

"$work/umsd" --amqp-listen 127.0.0.1:0 --data-dir "$work/data" \
	--mqtt-listen off --mqtt-ws-listen off --stomp-listen off --stomp-ws-listen off --http-listen 127.0.0.1:15672 --amqp-product RabbitMQ \
	>"$work/umsd.log" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 100); do
	port=$(sed -n 's/.*AMQP 0-9-1 listening.* addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/umsd.log" | head -n1)
	[ -n "$port" ] && break
	sleep 0.1
done
if [ -z "$port" ]; then
	echo "umsd did not start:"; cat "$work/umsd.log"; exit 1
fi

skip=""
if [ ${#SKIP[@]} -gt 0 ]; then
	skip=$(IFS='|'; echo "^(${SKIP[*]})\$")
fi
cd "$work/suite"
status=0
AMQP_URL="amqp://guest:guest@127.0.0.1:$port/" go test -tags integration -count=1 -timeout 10m -v ${skip:+-skip "$skip"} "$@" . || status=$?
if [ $status -ne 0 ]; then
	echo "--- umsd log (tail) ---"
	tail -n 50 "$work/umsd.log"
fi
exit $status
