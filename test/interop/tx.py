"""Transactions: tx.select, tx.commit, tx.rollback."""

import pika

from interop_common import count, declare, drain, publish, run


def body(c, conn, cleanup):
    ch = conn.channel()
    q = declare(ch, "q.tx", None, cleanup)

    tx = conn.channel()
    tx.tx_select()
    publish(tx, q, b"1")
    publish(tx, q, b"2")
    c.equal(count(conn, q), 0, "published messages are invisible before commit")
    tx.tx_commit()
    c.equal(count(conn, q), 2, "and visible after commit")
    publish(tx, q, b"3")
    tx.tx_rollback()
    c.equal(count(conn, q), 2, "rollback discards what was published")

    # Acks in a transaction count on commit only.
    acker = conn.channel()
    acker.tx_select()
    tags = []
    for _ in range(2):
        method, _, _ = acker.basic_get(queue=q, auto_ack=False)
        tags.append(method.delivery_tag)
    acker.basic_ack(tags[0])
    acker.basic_ack(tags[1])
    acker.tx_rollback()
    c.equal(count(conn, q), 0, "after rollback the messages stay unacknowledged")
    acker.close()
    c.equal(drain(ch, q), ["1", "2"], "and are requeued when the channel closes")

    publish(ch, q, b"4")
    acker = conn.channel()
    acker.tx_select()
    method, _, _ = acker.basic_get(queue=q, auto_ack=False)
    acker.basic_ack(method.delivery_tag)
    acker.tx_commit()
    acker.close()
    c.equal(count(conn, q), 0, "an ack committed in a transaction takes effect")

    # confirm.select on a transactional channel is refused.
    try:
        tx.confirm_delivery()
        c.check(False, "confirm.select on a tx channel is refused with 406")
    except pika.exceptions.ChannelClosedByBroker as e:
        c.equal(e.reply_code, 406, "confirm.select on a tx channel is refused with 406")


if __name__ == "__main__":
    run("tx", body)
