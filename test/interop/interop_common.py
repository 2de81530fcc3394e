"""Helpers shared by the interoperability scripts.

Every script takes the broker's AMQP URL and its MQTT address as arguments, prints one
line per check and exits with status 1 when a check fails.
"""

import datetime
import sys
import time
import traceback
import uuid

import pika


class Checks:
    """Counts and prints the outcome of each check."""

    def __init__(self, name):
        self.name = name
        self.failed = 0
        self.passed = 0

    def check(self, cond, what, detail=None):
        if cond:
            self.passed += 1
            print("ok   - %s" % what, flush=True)
        else:
            self.failed += 1
            extra = "" if detail is None else ": %r" % (detail,)
            print("FAIL - %s%s" % (what, extra), flush=True)
        return cond

    def equal(self, got, want, what):
        return self.check(got == want, "%s (want %r)" % (what, want), got if got != want else None)


def connect(url=None):
    """Opens a connection to url, by default the broker under test."""
    params = pika.URLParameters(url or sys.argv[1])
    params.socket_timeout = 5
    params.blocked_connection_timeout = 10
    return pika.BlockingConnection(params)


def uniq(prefix):
    return "%s.%s" % (prefix, uuid.uuid4().hex[:12])


def declare(ch, prefix, arguments=None, cleanup=None):
    """Declares a non-durable queue with a unique name."""
    name = uniq(prefix)
    ch.queue_declare(queue=name, arguments=arguments)
    if cleanup is not None:
        cleanup.append(("queue", name))
    return name


def exchange(ch, kind, arguments=None, cleanup=None, **kw):
    name = uniq("x." + kind)
    ch.exchange_declare(exchange=name, exchange_type=kind, arguments=arguments, **kw)
    if cleanup is not None:
        cleanup.append(("exchange", name))
    return name


def dead_letter_queue(ch, cleanup):
    """A fanout exchange with one queue bound: where dead letters go."""
    x = exchange(ch, "fanout", cleanup=cleanup)
    q = declare(ch, "q.dead", cleanup=cleanup)
    ch.queue_bind(queue=q, exchange=x)
    return x, q


def publish(ch, queue, body, **props):
    ch.basic_publish(exchange="", routing_key=queue, body=body,
                     properties=pika.BasicProperties(**props) if props else None)


def get(ch, queue):
    """basic.get with auto-ack; (None, None, None) when empty."""
    return ch.basic_get(queue=queue, auto_ack=True)


def get_wait(conn, ch, queue, timeout=5.0):
    """basic.get, retrying while the queue is empty (dead letters may
    arrive a little after what caused them)."""
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = get(ch, queue)
        if method is not None:
            return method, props, body
        if time.monotonic() > deadline:
            return None, None, None
        conn.sleep(0.02)


def wait_for(conn, cond, timeout=5.0):
    """Dispatches deliveries until cond() holds; False on timeout."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        conn.process_data_events(time_limit=0.02)
    return True


def drain(ch, queue):
    out = []
    while True:
        method, _, body = get(ch, queue)
        if method is None:
            return out
        out.append(body.decode())


def count(conn, queue):
    """Ready messages per a passive declare on a channel of its own."""
    ch = conn.channel()
    try:
        return ch.queue_declare(queue=queue, passive=True).method.message_count
    finally:
        ch.close()


def as_str(v):
    return v.decode() if isinstance(v, bytes) else v


def check_death(c, entry, count, reason, queue, exchange_name, routing_keys, label):
    """Checks one x-death entry as RabbitMQ writes it."""
    c.check(isinstance(entry, dict), "%s: x-death entry is a table" % label, type(entry))
    c.equal(entry.get("count"), count, "%s: count" % label)
    c.check(isinstance(entry.get("count"), int), "%s: count is an integer" % label, type(entry.get("count")))
    c.equal(as_str(entry.get("reason")), reason, "%s: reason" % label)
    c.equal(as_str(entry.get("queue")), queue, "%s: queue" % label)
    c.equal(as_str(entry.get("exchange")), exchange_name, "%s: exchange" % label)
    keys = entry.get("routing-keys")
    c.check(isinstance(keys, list), "%s: routing-keys is an array" % label, type(keys))
    c.equal([as_str(k) for k in keys or []], routing_keys, "%s: routing-keys" % label)
    ts = entry.get("time")
    c.check(isinstance(ts, datetime.datetime), "%s: time is a timestamp" % label, type(ts))


def run(name, body):
    """Runs body(checks, conn, cleanup) against the URL in argv[1]; argv[2]
    is the broker's MQTT address (host:port) for the scripts that use it."""
    if len(sys.argv) not in (2, 3):
        print("usage: %s AMQP_URL [MQTT_ADDR]" % sys.argv[0], file=sys.stderr)
        sys.exit(2)
    url = sys.argv[1]
    c = Checks(name)
    print("# %s against %s (pika %s)" % (name, url, pika.__version__), flush=True)
    cleanup = []
    conn = None
    try:
        conn = connect(url)
        body(c, conn, cleanup)
    except Exception:
        c.failed += 1
        print("FAIL - unexpected exception", flush=True)
        traceback.print_exc(file=sys.stdout)
    finally:
        if conn is not None and conn.is_open:
            try:
                ch = conn.channel()
                for kind, item in reversed(cleanup):
                    if kind == "queue":
                        ch.queue_delete(queue=item)
                    else:
                        ch.exchange_delete(exchange=item)
                conn.close()
            except Exception as e:  # cleanup is best effort
                print("# cleanup: %r" % (e,), flush=True)
    print("# %s: %d passed, %d failed" % (name, c.passed, c.failed), flush=True)
    sys.exit(1 if c.failed else 0)
