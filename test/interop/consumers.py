"""Consumer priorities (x-priority) and single active consumer."""

from interop_common import connect, declare, publish, run, wait_for


class Recorder:
    """Collects deliveries of one consumer."""

    def __init__(self, ch):
        self.ch = ch
        self.got = []

    def __call__(self, ch, method, props, body):
        self.got.append((method.delivery_tag, body.decode()))

    def bodies(self):
        return [b for _, b in self.got]

    def ack_last(self, multiple=False):
        self.ch.basic_ack(self.got[-1][0], multiple=multiple)


def body(c, conn, cleanup):
    ch = conn.channel()

    # Consumer priorities: the high one gets messages while it has room.
    q = declare(ch, "q.cprio", None, cleanup)
    low_ch, high_ch = conn.channel(), conn.channel()
    low_ch.basic_qos(prefetch_count=1)
    high_ch.basic_qos(prefetch_count=1)
    low, high = Recorder(low_ch), Recorder(high_ch)
    low_ch.basic_consume(q, low, consumer_tag="low", arguments={"x-priority": 1})
    high_ch.basic_consume(q, high, consumer_tag="high", arguments={"x-priority": 10})
    for i in (1, 2, 3):
        publish(ch, q, str(i).encode())
        if wait_for(conn, lambda: len(high.got) + len(low.got) == i):
            (high if high.got and high.got[-1][1] == str(i) else low).ack_last()
    c.equal(high.bodies(), ["1", "2", "3"], "the high-priority consumer gets every message while it has room")
    c.equal(low.bodies(), [], "the low-priority consumer gets nothing meanwhile")
    publish(ch, q, b"4")
    publish(ch, q, b"5")
    wait_for(conn, lambda: len(high.got) + len(low.got) == 5)
    conn.sleep(0.2)
    c.equal(high.bodies()[3:], ["4"], "the high-priority consumer takes the next one")
    c.equal(low.bodies(), ["5"], "the low-priority consumer gets one only when the high one is full")
    for r in (low, high):
        if r.got:
            r.ack_last(multiple=True)
    low_ch.basic_cancel("low")
    high_ch.basic_cancel("high")

    # Single active consumer: only the first consumer receives. The
    # consumers use a connection of their own.
    q = declare(ch, "q.sac", {"x-single-active-consumer": True}, cleanup)
    conn = connect()
    first_ch, second_ch = conn.channel(), conn.channel()
    first_ch.basic_qos(prefetch_count=10)
    second_ch.basic_qos(prefetch_count=10)
    first, second = Recorder(first_ch), Recorder(second_ch)
    first_ch.basic_consume(q, first, consumer_tag="first")
    second_ch.basic_consume(q, second)
    for i in (1, 2, 3):
        publish(ch, q, str(i).encode())
    wait_for(conn, lambda: len(first.got) + len(second.got) == 3)
    conn.sleep(0.2)
    c.equal(first.bodies(), ["1", "2", "3"], "single active consumer: the first consumer gets everything")
    c.equal(second.bodies(), [], "single active consumer: the second gets nothing")
    if first.got:
        first.ack_last(multiple=True)
    first_ch.basic_cancel("first")
    for i in (4, 5):
        publish(ch, q, str(i).encode())
    wait_for(conn, lambda: len(second.got) == 2)
    conn.sleep(0.2)
    c.equal(second.bodies(), ["4", "5"], "after the first cancels, the second gets the rest")
    c.equal(first.bodies(), ["1", "2", "3"], "the cancelled consumer gets no more")
    conn.close()


if __name__ == "__main__":
    run("consumers", body)
