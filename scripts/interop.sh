#!/usr/bin/env bash
# Runs the interoperability tests in test/interop: Python scripts using
# Debian's python3-pika and python3-paho-mqtt against an in-process UMS
# broker. Installs them with apt when missing and this runs as root;
# otherwise says what to install. Extra arguments go to go test (e.g. -v, -run).
set -euo pipefail
cd "$(dirname "$0")/.."

python=/usr/bin/python3

if ! "$python" -c 'import pika, paho.mqtt.client' 2>/dev/null; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
		echo "== installing python3-pika python3-paho-mqtt"
		apt-get update
		DEBIAN_FRONTEND=noninteractive apt-get install -y python3-pika python3-paho-mqtt
	else
		echo "python3-pika or python3-paho-mqtt is missing for $python; install them as root with:" >&2
		echo "    apt-get update && apt-get install -y python3-pika python3-paho-mqtt" >&2
		echo "(the tests will be skipped until then)" >&2
	fi
fi

echo "== go test ./test/interop/"
exec go test -count=1 "$@" ./test/interop/
