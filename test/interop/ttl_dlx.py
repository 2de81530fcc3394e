"""Per-queue and per-message TTL, x-expires and dead-lettering with x-death."""

import time

import pika

from interop_common import (as_str, check_death, count, dead_letter_queue, declare, drain, exchange,
                            get, get_wait, publish, run)


def body(c, conn, cleanup):
    ch = conn.channel()

    # Expired messages are never delivered.
    q = declare(ch, "q.ttl", {"x-message-ttl": 100}, cleanup)
    publish(ch, q, b"queue-ttl")
    publish(ch, q, b"message-ttl", expiration="100")
    q2 = declare(ch, "q.ttl", None, cleanup)
    publish(ch, q2, b"message-ttl", expiration="100")
    conn.sleep(0.3)
    c.check(get(ch, q)[0] is None, "x-message-ttl: basic.get finds nothing after expiry")
    c.check(get(ch, q2)[0] is None, "expiration: basic.get finds nothing after expiry")

    # Expired messages are dead-lettered with reason expired; the copy has
    # no expiration and x-death keeps the original one.
    dlx, dlq = dead_letter_queue(ch, cleanup)
    src = exchange(ch, "direct", cleanup=cleanup)
    q = declare(ch, "q.ttl.dlx", {"x-dead-letter-exchange": dlx}, cleanup)
    ch.queue_bind(queue=q, exchange=src, routing_key="rk")
    ch.basic_publish(exchange=src, routing_key="rk", body=b"old",
                     properties=pika.BasicProperties(expiration="50", headers={"app": "kept"}))
    method, props, msg = get_wait(conn, ch, dlq)
    if c.check(method is not None, "expired message reaches the dead-letter queue"):
        c.equal(msg, b"old", "dead letter body")
        c.equal(props.expiration, None, "dead letter has no expiration property")
        c.equal(method.exchange, dlx, "dead letter comes through the dead-letter exchange")
        c.equal(method.routing_key, "rk", "dead letter keeps the routing key")
        h = props.headers or {}
        c.equal(as_str(h.get("app")), "kept", "other headers are kept")
        deaths = h.get("x-death")
        if c.check(isinstance(deaths, list) and len(deaths) == 1, "x-death is an array of one table", deaths):
            check_death(c, deaths[0], 1, "expired", q, src, ["rk"], "expired")
            c.equal(as_str(deaths[0].get("original-expiration")), "50", "x-death original-expiration")
        c.equal(as_str(h.get("x-first-death-reason")), "expired", "x-first-death-reason")
        c.equal(as_str(h.get("x-first-death-queue")), q, "x-first-death-queue")
        c.equal(as_str(h.get("x-first-death-exchange")), src, "x-first-death-exchange")

    # A short TTL behind a message without one expires in place.
    q = declare(ch, "q.ttl.behind", {"x-dead-letter-exchange": dlx}, cleanup)
    publish(ch, q, b"head")
    start = time.monotonic()
    publish(ch, q, b"short", expiration="300")
    method, _, msg = get_wait(conn, ch, dlq, timeout=1.5)
    waited = time.monotonic() - start
    c.check(method is not None and msg == b"short" and waited < 1.3,
            "a short-TTL message behind the head is dead-lettered within 1 s of expiry", (msg, round(waited, 3)))
    c.equal(drain(ch, q), ["head"], "the head message stays")

    # Rejection: reason rejected, and the retry cycle raises the counts.
    retry_x = exchange(ch, "direct", cleanup=cleanup)
    work = declare(ch, "q.work", {"x-dead-letter-exchange": retry_x, "x-dead-letter-routing-key": "later"}, cleanup)
    retry = declare(ch, "q.retry", {"x-message-ttl": 50, "x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": work}, cleanup)
    ch.queue_bind(queue=retry, exchange=retry_x, routing_key="later")
    publish(ch, work, b"task")
    for round_ in range(3):
        method, props, msg = get_wait_ack(conn, ch, work)
        if not c.check(method is not None, "round %d: the task is in the work queue" % round_):
            return
        deaths = (props.headers or {}).get("x-death")
        if round_ == 0:
            c.check(deaths is None, "first delivery has no x-death", deaths)
        elif c.check(isinstance(deaths, list) and len(deaths) == 2, "round %d: two x-death entries" % round_, deaths):
            check_death(c, deaths[0], round_, "expired", retry, retry_x, ["later"], "round %d expired" % round_)
            check_death(c, deaths[1], round_, "rejected", work, "", [work], "round %d rejected" % round_)
        ch.basic_reject(delivery_tag=method.delivery_tag, requeue=False)

    # A cycle of expiries without a rejection drops the message.
    loop_x, watch = dead_letter_queue(ch, cleanup)
    a = declare(ch, "q.cycle", {"x-message-ttl": 50, "x-dead-letter-exchange": loop_x}, cleanup)
    ch.queue_bind(queue=a, exchange=loop_x)
    publish(ch, a, b"loop")
    conn.sleep(0.6)
    c.equal(len(drain(ch, watch)), 1, "a queue dead-lettering to itself by expiry sees the message once")
    c.equal(count(conn, a), 0, "and the message is gone")

    # x-expires deletes an unused queue.
    gone = declare(ch, "q.expires", {"x-expires": 200})
    conn.sleep(0.6)
    probe = conn.channel()
    try:
        probe.queue_declare(queue=gone, passive=True)
        c.check(False, "x-expires deletes the unused queue")
    except pika.exceptions.ChannelClosedByBroker as e:
        c.equal(e.reply_code, 404, "x-expires deletes the unused queue: passive declare")


def get_wait_ack(conn, ch, queue, timeout=5.0):
    """basic.get with manual acknowledgement, retrying while empty."""
    deadline = time.monotonic() + timeout
    while True:
        method, props, msg = ch.basic_get(queue=queue, auto_ack=False)
        if method is not None or time.monotonic() > deadline:
            return method, props, msg
        conn.sleep(0.02)


if __name__ == "__main__":
    run("ttl_dlx", body)
