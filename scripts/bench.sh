#!/usr/bin/env bash
# UMS side by side with RabbitMQ (AMQP, and its MQTT and STOMP plugins) and
# Mosquitto (MQTT) on this machine: installs Debian's rabbitmq-server and
# mosquitto when missing, starts them and a freshly built umsd on loopback
# (ports of their own, data in a temporary directory), runs every scenario
# against every broker in turn (alternating brokers, REPS repetitions) with
# cmd/umsbench, and writes docs/benchmarks.md: the medians with their
# spread, the ratios, issue 16's targets, the machine, the versions and the
# exact commands.
#
#   scripts/bench.sh                                  # everything, about 40 minutes
#   REPS=1 DURATION=3s IDLE_CONNS=2000 scripts/bench.sh    # a quick look
#   SCENARIOS=amqp-transient-16,mqtt-qos1 BROKERS="ums mosquitto" OUT=/tmp/b.md scripts/bench.sh
#
# Settings: REPS (3), DURATION of each run (10s), SCENARIOS (all; names
# below, comma or space separated), BROKERS ("ums rabbitmq mosquitto"),
# IDLE_CONNS (19000; each process may open 20,000 files here), IDLE_HOLD
# (15s), PORT (first of the ports used, 26000), OUT (docs/benchmarks.md),
# KEEP (0; 1 keeps the work directory with the logs and the JSON lines),
# RUN_TIMEOUT (180 seconds: a run still going then is stopped and counted
# as failed, e.g. a publisher a starved broker no longer reads from),
# RENDER_FROM (a work directory kept with KEEP=1: write the page from its
# results without running anything, e.g. after stopping a run early).
# docs/benchmarks-notes.md, when present, is copied into the page after
# the targets (notes and profiles written by hand).
# Needs root for apt-get when a broker is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
DURATION=${DURATION:-10s}
IDLE_CONNS=${IDLE_CONNS:-19000}
IDLE_HOLD=${IDLE_HOLD:-15s}
BROKERS=${BROKERS:-ums rabbitmq mosquitto}
PORT=${PORT:-26000}
OUT=${OUT:-docs/benchmarks.md}
KEEP=${KEEP:-0}
RUN_TIMEOUT=${RUN_TIMEOUT:-180}
RENDER_FROM=${RENDER_FROM:-}
NOTES=docs/benchmarks-notes.md

# Idle connections need many open files (the brokers started here inherit
# this limit).
ulimit -n "$(ulimit -Hn)"

# Ports: UMS PORT+0.., RabbitMQ PORT+10.., Mosquitto PORT+20, Redis PORT+30.
UMS_AMQP=$PORT UMS_MQTT=$((PORT + 1)) UMS_STOMP=$((PORT + 2)) UMS_HTTP=$((PORT + 3))
RMQ_AMQP=$((PORT + 10)) RMQ_MQTT=$((PORT + 11)) RMQ_STOMP=$((PORT + 12)) RMQ_DIST=$((PORT + 13))
MOSQ_MQTT=$((PORT + 20))
REDIS_PORT=$((PORT + 30))
RMQ_NODE=umsbench@$(hostname -s)

# name|mode|brokers|umsbench flags (besides the address and DURATION).
# Sizes: 16 B unless said; persistent AMQP runs and fixed rates use 1 KiB.
scenarios=(
	"amqp-transient-16|amqp|ums rabbitmq|-size 16"
	"amqp-transient-1k|amqp|ums rabbitmq|-size 1024"
	"amqp-persistent-1p|amqp|ums rabbitmq|-size 1024 -persistent -confirm 256 -prefetch 100"
	"amqp-persistent-4p|amqp|ums rabbitmq|-size 1024 -persistent -confirm 256 -prefetch 100 -publishers 4"
	"amqp-fanout-10|amqp|ums rabbitmq|-size 16 -exchange fanout -queues 10 -consumers 10"
	"amqp-topic-1000|amqp|ums rabbitmq|-size 16 -exchange topic -bindings 1000"
	"amqp-rate5k-transient|amqp|ums rabbitmq|-size 1024 -rate 5000"
	"amqp-rate5k-persistent|amqp|ums rabbitmq|-size 1024 -rate 5000 -persistent -confirm 256 -prefetch 100"
	"mqtt-qos0|mqtt|ums mosquitto rabbitmq|-qos 0"
	"mqtt-qos1|mqtt|ums mosquitto rabbitmq|-qos 1 -inflight 64"
	"mqtt-qos2|mqtt|ums mosquitto rabbitmq|-qos 2 -inflight 64"
	"mqtt-qos0-100to1-rate20k|mqtt|ums mosquitto rabbitmq|-qos 0 -pubs 100 -rate 200"
	"mqtt-qos1-100to1|mqtt|ums mosquitto rabbitmq|-qos 1 -pubs 100 -inflight 16"
	"mqtt-qos1-rate5k|mqtt|ums mosquitto rabbitmq|-qos 1 -inflight 64 -rate 5000"
	"stomp-queue-ack|stomp|ums rabbitmq|-dest /queue/umsbench-ack -ack client-individual -prefetch 100"
	"stomp-persistent-receipt|stomp|ums rabbitmq|-dest /queue/umsbench-durable -persistent -receipt -publishers 4 -ack client-individual -prefetch 100"
	"stomp-persistent-window|stomp|ums rabbitmq|-dest /queue/umsbench-durable -persistent -receipt -receipt-window 256 -publishers 4 -ack client-individual -prefetch 100"
	"stomp-topic-fanout|stomp|ums rabbitmq|-dest /topic/umsbench -consumers 10 -ack auto"
	"notify-http-batch|notify|ums|-via http -c 16 -batch 100 -n 0"
	"notify-http-batch-redis|notify|ums|-via http -c 16 -batch 100 -n 0"
	"mqtt-idle|mqtt|ums mosquitto rabbitmq|-idle IDLE -hold HOLD -spread 16"
	"stomp-idle|stomp|ums rabbitmq|-idle IDLE -hold HOLD"
)
all_names=$(for s in "${scenarios[@]}"; do printf '%s ' "${s%%|*}"; done)
SCENARIOS=${SCENARIOS:-$all_names}
SCENARIOS=${SCENARIOS//,/ }
for want in $SCENARIOS; do
	case " $all_names " in *" $want "*) ;; *) echo "unknown scenario $want (have: $all_names)" >&2; exit 2 ;; esac
done

if [ -n "$RENDER_FROM" ]; then
	work=$RENDER_FROM
	KEEP=1
else
	work=$(mktemp -d /tmp/umsbench.XXXXXX)
fi
results=$work/results.jsonl
cleanup() {
	stop_all || true
	if [ "$KEEP" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
stop_all() { :; }

log() { echo "$(date -u +%H:%M:%S) $*" >&2; }

wait_port() {
	for _ in $(seq 1 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	return 1
}

if [ -z "$RENDER_FROM" ]; then
# --- installation -----------------------------------------------------------
want_brokers=" $BROKERS "
missing=()
case "$want_brokers" in *" rabbitmq "*) command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server) ;; esac
case "$want_brokers" in *" mosquitto "*) command -v mosquitto >/dev/null || missing+=(mosquitto) ;; esac
# The -redis scenarios run UMS with its guards in a redis-server.
case " $SCENARIOS " in *"-redis "*) command -v redis-server >/dev/null || missing+=(redis-server) ;; esac
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing ${missing[*]}: run as root (apt-get) or install them" >&2
		exit 1
	fi
	log "installing ${missing[*]}"
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
fi
# Instances the packages started as services would hold CPU and memory.
for svc in rabbitmq-server mosquitto redis-server; do
	if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
		log "stopping the $svc service"
		systemctl stop "$svc"
	elif [ -x "/etc/init.d/$svc" ] && service "$svc" status >/dev/null 2>&1; then
		log "stopping the $svc service"
		service "$svc" stop >/dev/null 2>&1 || true
	fi
done

# --- brokers ----------------------------------------------------------------
log "building umsd and umsbench"
ver_ums=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo "-dirty")
go build -o "$work/umsd" ./cmd/umsd
go build -o "$work/umsbench" ./cmd/umsbench

# stop_proc stops the process whose id the variable named $1 holds, and
# empties it.
stop_proc() {
	local pid=${!1}
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	printf -v "$1" '%s' ''
}

ums_pid=
# start_ums starts umsd with its defaults and any more flags given.
start_ums() {
	rm -rf "$work/ums-data"
	"$work/umsd" --data-dir "$work/ums-data" --amqp-listen "127.0.0.1:$UMS_AMQP" --mqtt-listen "127.0.0.1:$UMS_MQTT" \
		--stomp-listen "127.0.0.1:$UMS_STOMP" --http-listen "127.0.0.1:$UMS_HTTP" \
		--mqtt-ws-listen off --stomp-ws-listen off \
		--webhook-secret s --webhook-allow-http=true --webhook-allow-private=true \
		--notify-workers webhook=64 --notify-rate-limit webhook=1000000/s \
		--notify-recipient-limit webhook=1000000/s "$@" >>"$work/umsd.log" 2>&1 &
	ums_pid=$!
	wait_port "$UMS_AMQP" && wait_port "$UMS_MQTT" && wait_port "$UMS_STOMP" && wait_port "$UMS_HTTP"
}
stop_ums() { stop_proc ums_pid; }

rmq_pid=
rmq_env() {
	env RABBITMQ_NODENAME="$RMQ_NODE" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$RMQ_AMQP" \
		RABBITMQ_DIST_PORT="$RMQ_DIST" RABBITMQ_BASE="$work/rabbitmq" RABBITMQ_MNESIA_BASE="$work/rabbitmq/mnesia" \
		RABBITMQ_LOG_BASE="$work/rabbitmq/log" RABBITMQ_PID_FILE="$work/rabbitmq/pid" \
		RABBITMQ_CONFIG_FILE="$work/rabbitmq/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$work/rabbitmq/enabled_plugins" \
		RABBITMQ_ENABLED_PLUGINS=rabbitmq_mqtt,rabbitmq_stomp "$@"
}
# rmq_run runs a RabbitMQ script (rabbitmq-server, rabbitmqctl). Debian's
# wrappers in /usr/sbin switch to user rabbitmq with su, whose PAM session
# lowers the open-files limit to 1,024; as root, the scripts behind them
# run as rabbitmq with this shell's limits instead.
rmq_run() {
	local pre=(env)
	if [ "$1" = --timeout ]; then
		pre=(timeout "$2")
		shift 2
	fi
	local script=$1
	shift
	if [ "$(id -u)" -eq 0 ] && id rabbitmq >/dev/null 2>&1 && [ -x "/usr/lib/rabbitmq/bin/$script" ]; then
		(cd /var/lib/rabbitmq && rmq_env HOME=/var/lib/rabbitmq "${pre[@]}" \
			setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "/usr/lib/rabbitmq/bin/$script" "$@")
	else
		rmq_env "${pre[@]}" "$script" "$@"
	fi
}
start_rabbitmq() {
	rm -rf "$work/rabbitmq"
	mkdir -p "$work/rabbitmq/log"
	printf '[rabbitmq_mqtt,rabbitmq_stomp].\n' >"$work/rabbitmq/enabled_plugins"
	cat >"$work/rabbitmq/rabbitmq.conf" <<-EOF
		listeners.tcp.default = 127.0.0.1:$RMQ_AMQP
		mqtt.listeners.tcp.default = 127.0.0.1:$RMQ_MQTT
		stomp.listeners.tcp.1 = 127.0.0.1:$RMQ_STOMP
	EOF
	# Debian's wrappers run the node and rabbitmqctl as user rabbitmq.
	if id rabbitmq >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
		chmod 0755 "$work"
		chown -R rabbitmq: "$work/rabbitmq"
	fi
	# A node stopped right before (after thousands of idle connections)
	# once left the next start unable to register its name, which ended a
	# full run. Try again, after killing whatever that start left running.
	local try
	for try in 1 2 3; do
		if rmq_run rabbitmq-server -detached >>"$work/rabbitmq/start.log" 2>&1 &&
			rmq_run rabbitmqctl -q -n "$RMQ_NODE" wait --timeout 120 "$work/rabbitmq/pid" >/dev/null 2>&1 &&
			rmq_run rabbitmqctl -q -n "$RMQ_NODE" await_startup --timeout 120 >/dev/null 2>&1; then
			break
		fi
		[ "$try" -lt 3 ] || { log "RabbitMQ did not start"; return 1; }
		log "RabbitMQ did not start; trying again"
		pkill -KILL -f "beam.*${RMQ_NODE%@*}" 2>/dev/null || true
		sleep 5
	done
	rmq_pid=$(cat "$work/rabbitmq/pid")
	wait_port "$RMQ_AMQP" && wait_port "$RMQ_MQTT" && wait_port "$RMQ_STOMP"
}
stop_rabbitmq() {
	[ -n "$rmq_pid" ] || return 0
	# A node busy with thousands of connections may take minutes to stop.
	rmq_run --timeout 60 rabbitmqctl -q -n "$RMQ_NODE" stop "$work/rabbitmq/pid" >/dev/null 2>&1 || true
	if kill -0 "$rmq_pid" 2>/dev/null; then
		kill -KILL "$rmq_pid" 2>/dev/null || true
		sleep 1
	fi
	rmq_pid=
}

mosq_pid=
start_mosquitto() {
	# The same bounds as UMS's defaults (256 messages in flight per client,
	# 100,000 queued per session) and TCP_NODELAY, as in bench-mqtt.sh.
	printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 256\nmax_queued_messages 100000\nset_tcp_nodelay true\npersistence false\n' \
		"$MOSQ_MQTT" >"$work/mosquitto.conf"
	mosquitto -c "$work/mosquitto.conf" >>"$work/mosquitto.log" 2>&1 &
	mosq_pid=$!
	wait_port "$MOSQ_MQTT"
}
stop_mosquitto() { stop_proc mosq_pid; }

redis_pid=
start_redis() {
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >>"$work/redis.log" 2>&1 &
	redis_pid=$!
	wait_port "$REDIS_PORT"
}
stop_redis() { stop_proc redis_pid; }

stop_all() { stop_ums; stop_rabbitmq; stop_mosquitto; stop_redis; }
start_broker() { case $1 in ums) start_ums ;; rabbitmq) start_rabbitmq ;; mosquitto) start_mosquitto ;; esac; }
stop_broker() { case $1 in ums) stop_ums ;; rabbitmq) stop_rabbitmq ;; mosquitto) stop_mosquitto ;; esac; }
broker_pid() { case $1 in ums) echo "$ums_pid" ;; rabbitmq) echo "$rmq_pid" ;; mosquitto) echo "$mosq_pid" ;; esac; }

# The address flags of a mode for a broker.
address() {
	local mode=$1 broker=$2
	case $mode:$broker in
	amqp:ums) echo "-url amqp://guest:guest@127.0.0.1:$UMS_AMQP/" ;;
	amqp:rabbitmq) echo "-url amqp://guest:guest@127.0.0.1:$RMQ_AMQP/" ;;
	mqtt:ums) echo "-addr 127.0.0.1:$UMS_MQTT" ;;
	mqtt:rabbitmq) echo "-addr 127.0.0.1:$RMQ_MQTT" ;;
	mqtt:mosquitto) echo "-addr 127.0.0.1:$MOSQ_MQTT" ;;
	stomp:ums) echo "-addr 127.0.0.1:$UMS_STOMP" ;;
	stomp:rabbitmq) echo "-addr 127.0.0.1:$RMQ_STOMP" ;;
	notify:ums) echo "-http-url http://guest:guest@127.0.0.1:$UMS_HTTP -amqp-url amqp://guest:guest@127.0.0.1:$UMS_AMQP/" ;;
	esac
}

for b in $BROKERS; do
	log "starting $b"
	start_broker "$b"
done
case " $SCENARIOS " in *"-redis "*)
	log "starting redis-server"
	start_redis
	;;
esac

# --- runs -------------------------------------------------------------------
: >"$work/commands.txt"
failures=0
printf 'REPS_DONE=0 DURATION=%q IDLE_CONNS=%q IDLE_HOLD=%q ver_ums=%q\n' "$DURATION" "$IDLE_CONNS" "$IDLE_HOLD" "$ver_ums" >"$work/settings"
for rep in $(seq 1 "$REPS"); do
	for s in "${scenarios[@]}"; do
		IFS='|' read -r name mode brokers flags <<<"$s"
		case " $SCENARIOS " in *" $name "*) ;; *) continue ;; esac
		for b in $brokers; do
			case "$want_brokers" in *" $b "*) ;; *) continue ;; esac
			f=${flags/IDLE/$IDLE_CONNS}
			f=${f/HOLD/$IDLE_HOLD}
			if [[ $name == *-idle ]]; then
				# Memory per connection is read on a fresh broker.
				stop_broker "$b"
				start_broker "$b"
				sleep 2
			else
				f="$f -duration $DURATION"
			fi
			if [[ $name == *-redis ]]; then
				# UMS with its notification guards in Redis, emptied first.
				redis-cli -p "$REDIS_PORT" flushall >/dev/null
				stop_ums
				start_ums --redis-url "redis://127.0.0.1:$REDIS_PORT/0"
			fi
			if [ "$mode:$b" = stomp:rabbitmq ]; then
				# What an earlier run left in RabbitMQ's durable STOMP queues
				# would count as this run's (umsbench deletes AMQP queues itself).
				for q in umsbench-ack umsbench-durable; do
					rmq_run rabbitmqctl -q -n "$RMQ_NODE" purge_queue "$q" >/dev/null 2>&1 || true
				done
			fi
			cmd="umsbench $mode $(address "$mode" "$b") $f"
			[[ $name != *-redis ]] || cmd="$cmd  # umsd with --redis-url redis://127.0.0.1:$REDIS_PORT/0"
			grep -qxF "$cmd" "$work/commands.txt" || echo "$cmd" >>"$work/commands.txt"
			log "rep $rep/$REPS $name on $b (load $(cut -d' ' -f1-3 /proc/loadavg))"
			# shellcheck disable=SC2086 # the flags are words
			if ! timeout --kill-after=30 "$RUN_TIMEOUT" "$work/umsbench" $mode $(address "$mode" "$b") $f -broker-pid "$(broker_pid "$b")" \
				-scenario "$name" -broker-name "$b" -json-out "$results" >"$work/run.log" 2>&1; then
				failures=$((failures + 1))
				log "FAILED: $cmd"
				tail -n 5 "$work/run.log" >&2
				echo "$name $b rep $rep: $(grep -v '^{' "$work/run.log" | tail -n 3 | tr '\n' ' ')" >>"$work/failures.txt"
			else
				grep -v '^{' "$work/run.log" | grep -v '^READY' | head -n 3 | sed 's/^/    /' >&2
			fi
			if [[ $name == *-idle || $name == *-redis ]]; then
				# A broker still closing thousands of connections would slow
				# the runs after this one.
				stop_broker "$b"
				start_broker "$b"
			fi
		done
	done
	sed -i "s/^REPS_DONE=[0-9]*/REPS_DONE=$rep/" "$work/settings"
done
stop_all
fi # RENDER_FROM

# --- the page ---------------------------------------------------------------
# shellcheck disable=SC1091 # written above
. "$work/settings"
REPS=$REPS_DONE
ver_rmq=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo "?")
ver_erl=$(dpkg-query -W -f '${Version}' erlang-base 2>/dev/null || echo "?")
ver_mosq=$(dpkg-query -W -f '${Version}' mosquitto 2>/dev/null || echo "?")
ver_go=$(go version | cut -d' ' -f3-)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
ram=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
mkdir -p "$(dirname "$OUT")"
{
	cat <<-EOF
		# Benchmarks

		UMS side by side with RabbitMQ (AMQP 0-9-1, and its MQTT and STOMP plugins) and
		Mosquitto (MQTT), all on loopback on one machine, measured with \`cmd/umsbench\` by
		\`scripts/bench.sh\` (this page is its output). Each scenario ran $REPS time(s) for
		$DURATION against each broker in turn (the brokers alternate within a repetition);
		a figure is the median of the runs and, in parentheses, their spread (min–max).

		**These figures are noisy.** The machine has $(nproc) cores and was shared with other
		work while this ran: brokers and load generator compete for the same two cores, and
		other processes took some of them too. The last column gives the machine's load
		average (1 min) at the end of the runs. Compare brokers within one table (they ran
		in the same minutes), not across pages.

		- **delivered msg/s**: messages received by the consumers per second (with fanout,
		  every copy counts). At a fixed rate (\`rate5k\`) it is about the offered rate; the
		  latency is what those rows are for.
		- **p50/p99/p99.9**: end-to-end latency from the publisher's send time (in the
		  body) to the consumer's receipt.
		- **broker CPU µs/msg**: the broker process's user+system CPU time (from
		  \`/proc/<pid>/stat\`) during the run, divided by the messages delivered.
		- **broker RSS**: the broker's resident memory at the end of the run.
		- **lost / duplicated**: summed over the runs (n/a where the tool cannot know). A
		  message counts as lost when it had not arrived 30 s after publishing ended (AMQP,
		  STOMP), so a broker far behind its publishers shows loss here; MQTT QoS 0 may
		  drop by design.
		- **ums÷broker**: UMS's median over the other broker's: above 1 for msg/s is
		  better for UMS, below 1 for p99 and CPU per message is better for UMS.
		- **notify-http-batch(-redis)**: notifications submitted over HTTP in batches of 100, each sent
		  as a webhook to the load generator, which answers at once (64 webhook workers,
		  rate limits set high so that every check runs and none holds anything back).
		  \`-redis\`: UMS restarted with \`--redis-url\`, its deduplication and rate-limit
		  guards in a \`redis-server --save '' --appendonly no\` started by the script;
		  otherwise the embedded guards. Delivered/s is end to end: the first submission
		  to the last webhook arriving.
		- Idle connections: the broker is restarted first; RSS per connection is (RSS
		  with the connections − RSS before) ÷ connections, read a few seconds after the
		  last connect; idle CPU is the broker's CPU over the rest of the hold
		  ($IDLE_HOLD in all).

		## Machine and versions

		| | |
		| --- | --- |
		| CPU | $cpu, $(nproc) cores (\`nproc\`) |
		| RAM | $ram |
		| kernel | $(uname -r) |
		| load average when the page was written | $(cut -d' ' -f1-3 /proc/loadavg) |
		| umsd | git $ver_ums, built with $ver_go |
		| RabbitMQ | $ver_rmq (Debian), Erlang $ver_erl, plugins rabbitmq_mqtt and rabbitmq_stomp, default settings |
		| Mosquitto | $ver_mosq (Debian): max_inflight_messages 256, max_queued_messages 100000, set_tcp_nodelay true, no persistence |
		| date | $(date -u +"%Y-%m-%d %H:%M UTC") |

		## Results

	EOF
	"$work/umsbench" report "$results"
	if [ -f "$NOTES" ]; then
		cat "$NOTES"
		echo
	else
		cat <<-EOF
			Memory given back after a burst and memory per queued paged-out message are not
			measured by this script. \`umsd --pprof-listen ADDR\` serves Go's profiles;
			profiles of the misses go in $NOTES.

		EOF
	fi
	cat <<-EOF
		## Commands

		Every run, as run (the broker address differs per broker; each run also got
		\`-broker-pid PID -scenario NAME -broker-name NAME -json-out FILE\`):

		\`\`\`
	EOF
	cat "$work/commands.txt"
	cat <<-EOF
		\`\`\`

		Reproduce: \`REPS=$REPS DURATION=$DURATION IDLE_CONNS=$IDLE_CONNS scripts/bench.sh\` (root,
		for apt-get when a broker is missing; \`KEEP=1\` keeps the JSON lines and the logs).
	EOF
	if [ -s "$work/failures.txt" ]; then
		printf '\nRuns that failed or were stopped after RUN_TIMEOUT (%ss; left out of the tables unless they printed a result first):\n\n```\n' "$RUN_TIMEOUT"
		cat "$work/failures.txt"
		printf '```\n'
	fi
} >"$OUT"
nfailed=0
[ ! -f "$work/failures.txt" ] || nfailed=$(wc -l <"$work/failures.txt")
log "wrote $OUT ($nfailed failed runs)"
