#!/usr/bin/env bash
# STOMP with other clients than go-stomp: installs Debian's python3-stomp
# (stomp.py) and npm's @stomp/stompjs when missing, then runs the tests
# that drive them (TestStompPythonClient over TCP, TestStompJSWebSocket
# over WebSocket with Node's WebSocket).
#
#   scripts/test-stomp-clients.sh
#
# Settings: STOMPJS_DIR, where @stomp/stompjs is installed
# (~/.cache/ums-stompjs).
set -euo pipefail
cd "$(dirname "$0")/.."
STOMPJS_DIR=${STOMPJS_DIR:-$HOME/.cache/ums-stompjs}

if ! /usr/bin/python3 -c 'import stomp' 2>/dev/null; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	$sudo apt-get install -y -q python3-stomp
fi
if [ ! -d "$STOMPJS_DIR/node_modules/@stomp/stompjs" ]; then
	mkdir -p "$STOMPJS_DIR"
	(cd "$STOMPJS_DIR" && npm install --no-audit --no-fund @stomp/stompjs@7)
fi
UMS_TEST_PYTHON=/usr/bin/python3 UMS_TEST_STOMPJS="$STOMPJS_DIR" \
	go test -race -count=1 -run 'TestStompPythonClient|TestStompJSWebSocket' -v ./test/
