"""Length limits: x-max-length, x-max-length-bytes and the overflow modes."""

import pika

from interop_common import as_str, check_death, count, dead_letter_queue, declare, drain, get_wait, publish, run


def body(c, conn, cleanup):
    ch = conn.channel()
    dlx, dlq = dead_letter_queue(ch, cleanup)

    # drop-head (the default) drops the oldest and dead-letters it (maxlen).
    q = declare(ch, "q.maxlen", {"x-max-length": 3, "x-dead-letter-exchange": dlx}, cleanup)
    for i in range(1, 6):
        publish(ch, q, str(i).encode())
    c.equal(count(conn, q), 3, "x-max-length 3 keeps 3 messages")
    first = get_wait(conn, ch, dlq)
    second = get_wait(conn, ch, dlq)
    c.equal([first[2], second[2]], [b"1", b"2"], "the two oldest are dead-lettered")
    if first[0] is not None:
        deaths = (first[1].headers or {}).get("x-death") or [{}]
        check_death(c, deaths[0], 1, "maxlen", q, "", [q], "maxlen")
        c.equal(as_str(first[1].headers.get("x-first-death-reason")), "maxlen", "x-first-death-reason")
    c.equal(drain(ch, q), ["3", "4", "5"], "the newest three stay, in order")

    # x-max-length-bytes counts body bytes.
    q = declare(ch, "q.maxbytes", {"x-max-length-bytes": 10}, cleanup)
    for b in (b"aaaa", b"bbbb", b"cccc", b"dd"):
        publish(ch, q, b)
    c.equal(drain(ch, q), ["bbbb", "cccc", "dd"], "x-max-length-bytes 10 drops the oldest body")

    # reject-publish: a confirming publisher gets a nack, nothing is queued.
    for overflow in ("reject-publish", "reject-publish-dlx"):
        drain(ch, dlq)
        q = declare(ch, "q.overflow", {"x-max-length": 2, "x-overflow": overflow, "x-dead-letter-exchange": dlx},
                    cleanup)
        pub = conn.channel()
        pub.confirm_delivery()
        results = []
        for i in range(1, 5):
            try:
                pub.basic_publish(exchange="", routing_key=q, body=str(i).encode())
                results.append("ack")
            except pika.exceptions.NackError:
                results.append("nack")
        c.equal(results, ["ack", "ack", "nack", "nack"], "%s: confirms" % overflow)
        c.equal(count(conn, q), 2, "%s: the queue keeps 2" % overflow)
        if overflow == "reject-publish-dlx":
            dead = [get_wait(conn, ch, dlq)[2], get_wait(conn, ch, dlq)[2]]
            c.equal(dead, [b"3", b"4"], "reject-publish-dlx dead-letters the refused messages")
        else:
            conn.sleep(0.1)
            c.equal(drain(ch, dlq), [], "reject-publish does not dead-letter")
        pub.close()


if __name__ == "__main__":
    run("max_length", body)
