"""Alternate exchanges, internal exchanges and auto-delete exchanges."""

import pika

from interop_common import declare, drain, exchange, get, run


def closed_with(c, what, code, fn):
    try:
        fn()
        c.check(False, what)
    except pika.exceptions.ChannelClosedByBroker as e:
        c.equal(e.reply_code, code, what)


def body(c, conn, cleanup):
    ch = conn.channel()
    ae = exchange(ch, "fanout", cleanup=cleanup)
    x = exchange(ch, "direct", {"alternate-exchange": ae}, cleanup)
    routed = declare(ch, "q.routed", None, cleanup)
    unrouted = declare(ch, "q.unrouted", None, cleanup)
    ch.queue_bind(queue=routed, exchange=x, routing_key="known")
    ch.queue_bind(queue=unrouted, exchange=ae)

    pub = conn.channel()
    pub.confirm_delivery()
    pub.basic_publish(exchange=x, routing_key="known", body=b"a")
    try:
        pub.basic_publish(exchange=x, routing_key="unknown", body=b"b", mandatory=True)
        c.check(True, "a mandatory message routed by the alternate exchange is not returned")
    except pika.exceptions.UnroutableError:
        c.check(False, "a mandatory message routed by the alternate exchange is not returned")
    c.equal(drain(ch, routed), ["a"], "routable messages take the normal route")
    method, _, msg = get(ch, unrouted)
    c.equal(msg, b"b", "unroutable messages go to the alternate exchange")
    if method is not None:
        c.equal((method.exchange, method.routing_key), (x, "unknown"), "with their original exchange and key")

    # An alternate exchange that routes nowhere: the message is returned.
    empty = exchange(ch, "fanout", cleanup=cleanup)
    x2 = exchange(ch, "direct", {"alternate-exchange": empty}, cleanup)
    try:
        pub.basic_publish(exchange=x2, routing_key="nowhere", body=b"c", mandatory=True)
        c.check(False, "a message no exchange routes is returned")
    except pika.exceptions.UnroutableError as e:
        c.equal(len(e.messages), 1, "a message no exchange routes is returned")

    # Internal exchange: 403 on publish, routes via exchange-to-exchange binding.
    internal = exchange(ch, "fanout", cleanup=cleanup, internal=True)
    front = exchange(ch, "direct", cleanup=cleanup)
    q = declare(ch, "q.internal", None, cleanup)
    ch.queue_bind(queue=q, exchange=internal)
    ch.exchange_bind(destination=internal, source=front, routing_key="in")
    pub.basic_publish(exchange=front, routing_key="in", body=b"via binding")
    c.equal(drain(ch, q), ["via binding"], "an internal exchange routes what reaches it through a binding")
    bad = conn.channel()
    bad.confirm_delivery()
    closed_with(c, "publishing to an internal exchange is refused with 403", 403,
                lambda: bad.basic_publish(exchange=internal, routing_key="", body=b"direct"))

    # Auto-delete exchange: goes with its last binding.
    auto = "x.auto." + q
    ch.exchange_declare(exchange=auto, exchange_type="direct", auto_delete=True)
    ch.queue_bind(queue=q, exchange=auto, routing_key="k")
    ch.queue_unbind(queue=q, exchange=auto, routing_key="k")
    probe = conn.channel()
    closed_with(c, "an auto-delete exchange is deleted with its last binding", 404,
                lambda: probe.exchange_declare(exchange=auto, passive=True))


if __name__ == "__main__":
    run("alternate_exchange", body)
