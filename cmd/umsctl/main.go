// Command umsctl manages a UMS server over its HTTP APIs only: the
// RabbitMQ-compatible management API under /api and the notification API
// under /api/v1. It imports no UMS package, so it works against any
// reachable server (and, for the management commands, against RabbitMQ).
//
// Objects are given as key=value arguments, as rabbitmqadmin takes them;
// connection settings and output format are flags, which may come before
// or after the command:
//
//	umsctl list queues
//	umsctl --vhost /prod list queues --format json
//	umsctl declare queue name=orders durable=true arguments='{"x-max-length":1000}'
//	umsctl publish exchange=amq.default routing_key=orders payload=hello
//	umsctl get queue=orders count=5 ackmode=ack_requeue_false
//	umsctl notify send note.json
//
// Exit status: 0 done, 1 the server refused (its reason is printed) or
// could not be reached, 2 a usage error.
//
// Files: main.go (flags, dispatch), client.go (HTTP calls, error answers),
// args.go (key=value arguments), output.go (tables, JSON, files),
// objects.go (status, lists, queues, exchanges, bindings, connections),
// messages.go (publish, get), users.go (users, permissions, definitions),
// notify.go (notifications).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

const usage = `usage: umsctl [flags] COMMAND [ARGS]

commands:
  status                                   server version, object and message totals, alarms
  list queues|exchanges|bindings|connections|users|vhosts
  declare queue name=Q [durable=BOOL] [auto_delete=BOOL] [arguments=JSON]
  declare exchange name=X [type=direct|fanout|topic|headers|...] [durable=BOOL]
                          [auto_delete=BOOL] [internal=BOOL] [arguments=JSON]
  declare binding source=X destination=D [destination_type=queue|exchange]
                          [routing_key=K] [arguments=JSON]
  delete queue name=Q [if_unused=BOOL] [if_empty=BOOL]
  delete exchange name=X [if_unused=BOOL]
  delete binding source=X destination=D [destination_type=queue|exchange]
                          [routing_key=K | properties_key=P]
  purge queue name=Q
  publish exchange=X routing_key=K [payload=TEXT] [payload_encoding=string|base64]
          [properties=JSON]            (no payload=: the payload is read from stdin)
  get queue=Q [count=N] [ackmode=ack_requeue_true|ack_requeue_false|
          reject_requeue_true|reject_requeue_false] [encoding=auto|base64] [truncate=N]
  close connection NAME
  add_user NAME PASSWORD [--tags administrator,management]
  delete_user NAME
  set_permissions USER CONFIGURE WRITE READ
  set_topic_permissions USER EXCHANGE WRITE READ
  export_definitions FILE|-                RabbitMQ's definitions JSON, as the server gives it
  import_definitions FILE|-
  notify send FILE|-                       submit one notification (JSON); prints id and status
  notify status ID
  notify retry ID                          send a dead-lettered notification again

flags (anywhere on the line):
  --url URL          server (env UMS_URL, default http://127.0.0.1:15672)
  --user NAME        (env UMS_USER, default guest)
  --password PASS    (env UMS_PASSWORD, default guest)
  --vhost NAME       vhost of the command (default /); "list" without it covers every vhost
  --format FORMAT    table (default) or json
  --tags TAGS        add_user: comma-separated tags
  --idempotency-key KEY
                     notify send: the same key again answers the first id (deduplicated)
  --                 ends the flags (for an argument that starts with "-")

exit status: 0 done, 1 refused by the server or not reachable, 2 usage error
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// usageError is a wrong command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// env is one command's settings and streams.
type env struct {
	c        *client
	format   string // "table" or "json"
	tags     string
	idemKey  string // notify send: the Idempotency-Key header
	allHosts bool   // --vhost not given
	stdin    io.Reader
	stdout   io.Writer
}

// run runs one command line and returns the exit status.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return runIn(args, os.Stdin, stdout, stderr, getenv)
}

// runIn is run with stdin given.
func runIn(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("umsctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	base := fs.String("url", or(getenv("UMS_URL"), "http://127.0.0.1:15672"), "")
	user := fs.String("user", or(getenv("UMS_USER"), "guest"), "")
	password := fs.String("password", or(getenv("UMS_PASSWORD"), "guest"), "")
	vhost := fs.String("vhost", "/", "")
	format := fs.String("format", "table", "")
	tags := fs.String("tags", "", "")
	idemKey := fs.String("idempotency-key", "", "")
	pos, err := parseAnywhere(fs, args)
	if errors.Is(err, flag.ErrHelp) || (err == nil && len(pos) > 0 && pos[0] == "help") {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err == nil && *format != "table" && *format != "json" {
		err = usagef("--format must be table or json, not %q", *format)
	}
	if err == nil && len(pos) == 0 {
		err = usagef("no command")
	}
	if err != nil {
		fmt.Fprintf(stderr, "umsctl: %v\n\n%s", err, usage)
		return 2
	}
	vhostSet := false
	fs.Visit(func(f *flag.Flag) { vhostSet = vhostSet || f.Name == "vhost" })
	e := &env{
		c: &client{base: strings.TrimRight(*base, "/"), user: *user, password: *password, vhost: *vhost,
			http: &http.Client{Timeout: requestTimeout}},
		format: *format, tags: *tags, idemKey: *idemKey, allHosts: !vhostSet, stdin: stdin, stdout: stdout,
	}
	err = e.dispatch(pos[0], pos[1:])
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "umsctl: %v\n(umsctl help lists the commands)\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "umsctl: %v\n", err)
	return 1
}

// parseAnywhere parses flags placed before, between or after the
// positional arguments, which it returns in order.
func parseAnywhere(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			// "--" ends the flags: what follows is positional even when
			// it starts with "-" (a pattern such as "-dev$").
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// dispatch runs command cmd with its arguments.
func (e *env) dispatch(cmd string, args []string) error {
	switch cmd {
	case "status":
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		return e.status()
	case "list":
		if len(args) != 1 {
			return usagef("list takes one of queues, exchanges, bindings, connections, users, vhosts")
		}
		return e.list(args[0])
	case "declare", "delete", "purge":
		if len(args) == 0 {
			return usagef("%s: queue, exchange or binding?", cmd)
		}
		kv, err := keyValues(args[1:])
		if err != nil {
			return err
		}
		return e.object(cmd, args[0], kv)
	case "publish":
		kv, err := keyValues(args)
		if err != nil {
			return err
		}
		return e.publish(kv)
	case "get":
		kv, err := keyValues(args)
		if err != nil {
			return err
		}
		return e.get(kv)
	case "close":
		if len(args) != 2 || args[0] != "connection" {
			return usagef("usage: close connection NAME")
		}
		return e.closeConnection(args[1])
	case "add_user":
		if len(args) != 2 {
			return usagef("usage: add_user NAME PASSWORD [--tags TAGS]")
		}
		return e.addUser(args[0], args[1])
	case "delete_user":
		if len(args) != 1 {
			return usagef("usage: delete_user NAME")
		}
		return e.deleteUser(args[0])
	case "set_permissions":
		if len(args) != 4 {
			return usagef("usage: set_permissions USER CONFIGURE WRITE READ [--vhost VHOST]")
		}
		return e.setPermissions(args[0], args[1], args[2], args[3])
	case "set_topic_permissions":
		if len(args) != 4 {
			return usagef("usage: set_topic_permissions USER EXCHANGE WRITE READ [--vhost VHOST]")
		}
		return e.setTopicPermissions(args[0], args[1], args[2], args[3])
	case "export_definitions":
		if len(args) != 1 {
			return usagef("usage: export_definitions FILE|-")
		}
		return e.exportDefinitions(args[0])
	case "import_definitions":
		if len(args) != 1 {
			return usagef("usage: import_definitions FILE|-")
		}
		return e.importDefinitions(args[0])
	case "notify":
		if len(args) != 2 {
			return usagef("usage: notify send FILE|- | notify status ID | notify retry ID")
		}
		return e.notify(args[0], args[1])
	}
	return usagef("unknown command %q", cmd)
}

func noArgs(cmd string, args []string) error {
	if len(args) > 0 {
		return usagef("%s: unexpected arguments %q", cmd, args)
	}
	return nil
}
