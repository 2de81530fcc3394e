#!/usr/bin/env bash
# The project's test command: formatting, vet, generated code, the Go tests
# with the race detector, and RabbitMQ's own client suite against umsd.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== test dependencies"
# Debian's python3-pika and python3-paho-mqtt drive the interoperability
# tests in test/interop.
if ! /usr/bin/python3 -c 'import pika, paho.mqtt.client' 2>/dev/null; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pika python3-paho-mqtt >/dev/null
	else
		echo "python3-pika or python3-paho-mqtt is missing: test/interop will skip (apt-get install -y python3-pika python3-paho-mqtt)" >&2
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
if command -v npm >/dev/null && [ ! -f test/interop/node/node_modules/amqplib/package.json ]; then
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

echo "== go test -race"
go test -race -count=1 -timeout 15m ./...

echo "== load-sized tests without the race detector"
go test -count=1 -timeout 5m -run 'TestNotifyPriorityOvertakesBacklog' ./test/

echo "== amqp091-go integration suite against umsd"
./scripts/amqp091-suite.sh
