// Command umsbench drives real clients against any broker (UMS, RabbitMQ,
// Mosquitto, RabbitMQ's STOMP plugin) and reports throughput, end-to-end latency and lost or
// duplicated messages, so brokers can be measured side by side on the same
// machine. It talks to the broker over the network only and imports no UMS
// package.
//
//	umsbench amqp -url amqp://guest:guest@127.0.0.1:5672/ -publishers 1 -consumers 1 \
//	    -size 16 -confirm 256 -persistent -duration 10s
//	umsbench mqtt -addr 127.0.0.1:1883 -qos 1 -pubs 100 -rate 1000 -inflight 64 -duration 10s
//	umsbench mqtt -addr 127.0.0.1:1883 -idle 5000 -hold 60s
//	umsbench notify -http-url http://guest:guest@127.0.0.1:15672 -c 16 -batch 100 -n 100000
//	umsbench notify -via amqp -amqp-url amqp://guest:guest@127.0.0.1:5672/ -c 4 -confirm 256 -dedup
//
// The notify mode measures UMS notification delivery: it runs its own
// webhook endpoint, submits notifications addressed to it and counts what
// arrives, so the server needs --webhook-secret, --webhook-allow-http and
// --webhook-allow-private.
//
//	umsbench stomp -addr 127.0.0.1:61613 -dest /queue/bench -ack client-individual -prefetch 100 -duration 10s
//	umsbench stomp -dest /topic/bench -consumers 10 -ack auto
//	umsbench stomp -dest /queue/bench-durable -persistent -receipt -publishers 8
//
// The floor mode sends the stream of a fixed-rate latency run through a
// relay process that only copies bytes: the latency no broker can beat on
// the machine.
//
//	umsbench floor -rate 5000 -size 1024 -duration 8s
//
// Without a mode, umsbench runs the amqp mode (umsbench -url … works as it
// always did). Every run prints a human-readable summary and then one line
// of JSON with the same numbers, for scripts. Every mode takes
// -broker-pid (the broker's CPU time per delivered message and its RSS,
// read from /proc), -scenario and -broker-name (copied into the JSON
// line) and -json-out FILE (the JSON line appended there too);
// "umsbench report FILE" turns such files into Markdown tables
// (scripts/bench.sh writes docs/benchmarks.md that way).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const usage = `usage: umsbench [amqp|mqtt|notify|stomp|floor|report] [flags]

modes:
  amqp   amqp091-go publishers and consumers on one or more queues (the default)
  mqtt   MQTT publishers to one subscriber (raw MQTT 3.1.1 or paho MQTT 5 clients),
         or many idle connections (-idle N)
  notify UMS notifications over the HTTP API or AMQP, delivered as webhooks to a
         local endpoint that counts them
  stomp  go-stomp publishers and subscribers on one destination (/queue/: competing
         consumers; /topic/, /exchange/: every subscriber gets every message)
  floor  the same fixed-rate stream through a relay process that only copies bytes:
         the lowest latency any broker can show on this machine
  report turn files of JSON lines (-json-out) into Markdown tables: medians and
         spreads per scenario and broker, the ratios to UMS, and issue 16's targets

"umsbench MODE -h" lists the flags of a mode.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a mode and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	mode := "amqp"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		mode, args = args[0], args[1:]
	}
	var err error
	switch mode {
	case "amqp":
		err = amqpMain(args, stdout, stderr)
	case "mqtt":
		err = mqttMain(args, stdout, stderr)
	case "notify":
		err = notifyMain(args, stdout, stderr)
	case "stomp":
		err = stompMain(args, stdout, stderr)
	case "floor":
		err = floorMain(args, stdout, stderr)
	case "report":
		err = reportMain(args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "umsbench: unknown mode %q\n\n%s", mode, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case err == flag.ErrHelp:
		return 0
	case err == errUsage:
		return 2
	}
	fmt.Fprintln(stderr, "umsbench:", err)
	return 1
}

// errUsage: the flags were wrong; the flag set has already said why.
var errUsage = fmt.Errorf("usage")

// parseFlags parses args into fs, which reports errors to stderr.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "umsbench: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	return nil
}
