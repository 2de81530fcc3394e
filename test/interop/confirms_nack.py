"""Publisher confirms, including basic.nack from a full queue."""

import pika

from interop_common import count, declare, run


def body(c, conn, cleanup):
    ch = conn.channel()
    q = declare(ch, "q.confirm", {"x-max-length": 1, "x-overflow": "reject-publish"}, cleanup)
    pub = conn.channel()
    pub.confirm_delivery()

    pub.basic_publish(exchange="", routing_key=q, body=b"first")
    c.check(True, "a routed message is acked")
    try:
        pub.basic_publish(exchange="", routing_key=q, body=b"second")
        c.check(False, "a message a full reject-publish queue refuses is nacked")
    except pika.exceptions.NackError:
        c.check(True, "a message a full reject-publish queue refuses is nacked")
    c.equal(count(conn, q), 1, "the nacked message is not enqueued")

    # The channel stays usable and in confirm mode.
    pub.basic_publish(exchange="", routing_key="no-such-queue-" + q, body=b"lost")
    c.check(True, "an unroutable non-mandatory message is acked")
    try:
        pub.basic_publish(exchange="", routing_key="no-such-queue-" + q, body=b"lost", mandatory=True)
        c.check(False, "an unroutable mandatory message is returned")
    except pika.exceptions.UnroutableError as e:
        c.equal(len(e.messages), 1, "an unroutable mandatory message is returned")

    ch.basic_get(queue=q, auto_ack=True)
    pub.basic_publish(exchange="", routing_key=q, body=b"third")
    c.check(True, "with room again, the next message is acked")
    c.equal(count(conn, q), 1, "and enqueued")

    # Many publishes in a row, some of them refused.
    q2 = declare(ch, "q.confirm", {"x-max-length": 5, "x-overflow": "reject-publish"}, cleanup)
    results = []
    for i in range(8):
        try:
            pub.basic_publish(exchange="", routing_key=q2, body=str(i).encode())
            results.append(True)
        except pika.exceptions.NackError:
            results.append(False)
    c.equal(results, [True] * 5 + [False] * 3, "acks up to the limit, nacks after it")


if __name__ == "__main__":
    run("confirms_nack", body)
