"""Priority queues (x-max-priority)."""

import pika

from interop_common import declare, drain, run


def body(c, conn, cleanup):
    ch = conn.channel()
    ch.confirm_delivery()

    q = declare(ch, "q.prio", {"x-max-priority": 10}, cleanup)
    pub = [("p3a", 3), ("p7a", 7), ("p1a", 1), ("p9a", 9), ("p7b", 7), ("p0a", 0), ("p9b", 9), ("p5a", 5)]
    for b, p in pub:
        ch.basic_publish(exchange="", routing_key=q, body=b.encode(), properties=pika.BasicProperties(priority=p))
    c.equal(drain(ch, q), ["p9a", "p9b", "p7a", "p7b", "p5a", "p3a", "p1a", "p0a"],
            "highest priority first, equal priorities in publish order")

    # A consumer sees the same order, and the property is delivered unchanged.
    for b, p in pub:
        ch.basic_publish(exchange="", routing_key=q, body=b.encode(), properties=pika.BasicProperties(priority=p))
    cons = conn.channel()
    cons.basic_qos(prefetch_count=1)
    got = []
    for method, props, msg in cons.consume(q, inactivity_timeout=2):
        if method is None:
            break
        got.append((msg.decode(), props.priority))
        cons.basic_ack(method.delivery_tag)
        if len(got) == len(pub):
            break
    cons.cancel()
    c.equal([b for b, _ in got], ["p9a", "p9b", "p7a", "p7b", "p5a", "p3a", "p1a", "p0a"], "consumer order")
    c.check(all(p == dict(pub)[b] for b, p in got if dict(pub)[b] != 0), "priorities delivered unchanged", got)
    c.check(all(p == 0 for b, p in got if dict(pub)[b] == 0),
            "a priority property of 0 is delivered as 0, not dropped", got)

    # Above the maximum counts as the maximum.
    q = declare(ch, "q.prio5", {"x-max-priority": 5}, cleanup)
    for b, p in [("p1", 1), ("p5", 5), ("p200", 200), ("p3", 3)]:
        ch.basic_publish(exchange="", routing_key=q, body=b.encode(), properties=pika.BasicProperties(priority=p))
    c.equal(drain(ch, q), ["p5", "p200", "p3", "p1"], "priority 200 on x-max-priority 5 is treated as 5")

    # Without x-max-priority, priorities are ignored.
    q = declare(ch, "q.fifo", None, cleanup)
    for b, p in [("a", 1), ("b", 9), ("c", 0)]:
        ch.basic_publish(exchange="", routing_key=q, body=b.encode(), properties=pika.BasicProperties(priority=p))
    c.equal(drain(ch, q), ["a", "b", "c"], "a queue without x-max-priority is FIFO")

    # Invalid x-max-priority values are refused with 406.
    for bad in (256, "10", -1):
        probe = conn.channel()
        try:
            probe.queue_declare(queue="q.badprio", arguments={"x-max-priority": bad})
            c.check(False, "x-max-priority %r refused" % (bad,))
            probe.queue_delete(queue="q.badprio")
        except pika.exceptions.ChannelClosedByBroker as e:
            c.check(e.reply_code == 406 and "x-max-priority" in e.reply_text,
                    "x-max-priority %r refused with 406 naming the argument" % (bad,), (e.reply_code, e.reply_text))


if __name__ == "__main__":
    run("priorities", body)
