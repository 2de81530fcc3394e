"""Direct reply-to (amq.rabbitmq.reply-to)."""

import pika

from interop_common import connect, declare, get_wait, run, wait_for

REPLY_TO = "amq.rabbitmq.reply-to"


def body(c, conn, cleanup):
    ch = conn.channel()
    rpc = declare(ch, "q.rpc", None, cleanup)

    replies = []
    client = conn.channel()
    client.basic_consume(REPLY_TO, lambda _c, m, p, b: replies.append((p.correlation_id, b)), auto_ack=True)
    client.basic_publish(exchange="", routing_key=rpc, body=b"ping",
                         properties=pika.BasicProperties(reply_to=REPLY_TO, correlation_id="id-1"))

    # The server side runs on a connection of its own.
    server_conn = connect()
    server = server_conn.channel()
    method, props, msg = get_wait(server_conn, server, rpc)
    if not c.check(method is not None, "the server receives the request"):
        return
    c.check(props.reply_to.startswith(REPLY_TO + ".") and len(props.reply_to) > len(REPLY_TO) + 1,
            "the request carries a per-client reply address", props.reply_to)
    server.basic_publish(exchange="", routing_key=props.reply_to, body=msg.upper(),
                         properties=pika.BasicProperties(correlation_id=props.correlation_id))
    server_conn.close()

    wait_for(conn, lambda: replies)
    c.equal(replies, [("id-1", b"PING")], "the client's reply consumer receives the reply")

    bad = conn.channel()
    try:
        bad.basic_consume(REPLY_TO, lambda *a: None, auto_ack=False)
        c.check(False, "consuming the reply-to pseudo-queue with acks is refused with 406")
    except pika.exceptions.ChannelClosedByBroker as e:
        c.equal(e.reply_code, 406, "consuming the reply-to pseudo-queue with acks is refused with 406")

    bad = conn.channel()
    bad.confirm_delivery()
    try:
        bad.basic_publish(exchange="", routing_key=rpc, body=b"x",
                          properties=pika.BasicProperties(reply_to=REPLY_TO))
        c.check(False, "a reply-to without a reply consumer on the channel is refused with 406")
    except pika.exceptions.ChannelClosedByBroker as e:
        c.equal(e.reply_code, 406, "a reply-to without a reply consumer on the channel is refused with 406")


if __name__ == "__main__":
    run("direct_reply_to", body)
