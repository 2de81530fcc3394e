#!/usr/bin/env bash
# The project's test command: formatting, vet, generated code, the Go tests
# with the race detector, and RabbitMQ's own client suite against umsd.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== test dependencies"
# Debian's python3-pika, python3-paho-mqtt and python3-stomp (stomp.py)
# drive the interoperability tests in test/interop and test/stomp_clients_test.go.
if ! /usr/bin/python3 -c 'import pika, paho.mqtt.client, stomp' 2>/dev/null; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pika python3-paho-mqtt python3-stomp >/dev/null
	else
		echo "python3-pika, python3-paho-mqtt or python3-stomp is missing: those tests will skip (apt-get install -y python3-pika python3-paho-mqtt python3-stomp)" >&2
	fi
fi

# Debian's redis-server backs the Redis guards' tests in notify/redisstore
# (each test starts its own on a loopback port; it is not run as a service).
if ! command -v redis-server >/dev/null; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
	else
		echo "redis-server is missing: the Redis guard tests will skip (apt-get install -y redis-server)" >&2
	fi
fi

# Debian's rabbitmqadmin (in package rabbitmq-server) drives the management
# API in test/mgmt_rabbitmqadmin_test.go. Only the script is taken from the
# package: installing it would pull in Erlang and start a RabbitMQ node.
if ! command -v rabbitmqadmin >/dev/null; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
		apt-get update -qq
		tmp=$(mktemp -d)
		if (cd "$tmp" && apt-get download -qq rabbitmq-server >/dev/null && dpkg-deb -x rabbitmq-server_*.deb x); then
			install -m 0755 "$tmp/x/usr/bin/rabbitmqadmin" /usr/local/bin/rabbitmqadmin
		else
			echo "could not fetch rabbitmqadmin: the rabbitmqadmin test will skip" >&2
		fi
		rm -rf "$tmp"
	else
		echo "rabbitmqadmin is missing: the rabbitmqadmin test will skip (from Debian's rabbitmq-server)" >&2
	fi
fi

# Debian's chromium drives the web console's browser tests
# (test/console_test.go, headless, through chromedp).
if ! command -v chromium >/dev/null; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	else
		echo "chromium is missing: the web console's browser tests will skip (apt-get install -y chromium)" >&2
	fi
fi

# Node.js with npm's amqplib (pinned in test/interop/node/package.json)
# drives test/interop/amqplib_test.go.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
	else
		echo "nodejs or npm is missing: the amqplib interop test will skip (apt-get install -y nodejs npm)" >&2
	fi
fi
if command -v npm >/dev/null && { [ ! -f test/interop/node/node_modules/amqplib/package.json ] ||
	[ ! -f test/interop/node/node_modules/@stomp/stompjs/package.json ]; }; then
	(cd test/interop/node && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== generated AMQP codec is up to date"
go generate ./protocols/amqp/wire/
git diff --exit-code -- protocols/amqp/wire/spec_gen.go

echo "== deployments: example config, Helm chart, systemd unit, Dockerfile"
# deployments/ holds no server code; what can be checked without a cluster
# or a container runtime is checked here, the rest is skipped with a reason.
(
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	go build -o "$tmp/umsd" ./cmd/umsd
	"$tmp/umsd" --check-config --config deployments/ums.yaml
	# The chart rendered (with stand-ins for Helm's functions) and each
	# rendered configuration checked by umsd; compose.yaml and the
	# Dockerfile checked against the settings.
	UMS_BIN="$tmp/umsd" go test -count=1 ./deployments/
	if command -v helm >/dev/null; then
		helm lint --quiet deployments/helm/ums
		helm template ums deployments/helm/ums >/dev/null
	else
		echo "helm not installed (no Debian package): helm lint/template skipped; the chart is rendered by go test ./deployments/"
	fi
	if command -v systemd-analyze >/dev/null; then
		# verify wants the ExecStart binary to exist: point it at the one built.
		sed "s#/usr/local/bin/umsd#$tmp/umsd#g" deployments/systemd/ums.service >"$tmp/ums.service"
		out=$(systemd-analyze verify "$tmp/ums.service" 2>&1) || { echo "$out"; exit 1; }
		# verify exits 0 on unknown keys and bad values: any message fails.
		if [ -n "$out" ]; then echo "$out"; exit 1; fi
		if systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
			systemd-analyze security --offline=yes --threshold=20 "$tmp/ums.service" >/dev/null 2>&1 ||
				{ systemd-analyze security --offline=yes "$tmp/ums.service"; echo "ums.service: exposure above 2.0"; exit 1; }
		fi
	else
		echo "systemd-analyze not found: deployments/systemd/ums.service not verified"
	fi
	if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
		docker build -q -f deployments/Dockerfile -t ums:test . >/dev/null
	elif command -v podman >/dev/null && podman info >/dev/null 2>&1; then
		podman build -q -f deployments/Dockerfile -t ums:test . >/dev/null
	else
		echo "no container runtime reachable (docker or podman with a running daemon): deployments/Dockerfile not built"
	fi
)

echo "== go test -race"
# @stomp/stompjs (pinned in test/interop/node/package.json) drives
# TestStompJSWebSocket.
if [ -f test/interop/node/node_modules/@stomp/stompjs/package.json ]; then
	export UMS_TEST_STOMPJS="$PWD/test/interop/node"
fi
go test -race -count=1 -timeout 15m ./...

echo "== load-sized tests without the race detector"
go test -count=1 -timeout 5m -run 'TestNotifyPriorityOvertakesBacklog' ./test/

echo "== micro-benchmarks (100 iterations each)"
# Every Benchmark runs 100 iterations, so that all of them keep compiling
# and running; -short shrinks the few large fixed setups. Figures are not
# checked here (scripts/bench.sh and docs/benchmarks.md are for those).
go test -run '^$' -bench . -benchtime 100x -short -timeout 10m ./...

echo "== amqp091-go integration suite against umsd"
./scripts/amqp091-suite.sh
