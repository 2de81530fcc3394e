"""MQTT with paho-mqtt (3.1.1 and 5) next to pika on the same broker."""

import queue
import socket
import sys
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pika

from interop_common import connect, declare, get_wait, run


def mqtt_addr():
    host, port = sys.argv[2].rsplit(":", 1)
    return host, int(port)


class Client:
    """A paho client whose callbacks land in queues, so checks can wait."""

    def __init__(self, client_id, protocol=mqtt.MQTTv311, clean=True, username="guest",
                 password="guest", will=None, session_expiry=None):
        kw = {"client_id": client_id, "protocol": protocol}
        if protocol != mqtt.MQTTv5:
            kw["clean_session"] = clean
        self.protocol, self.clean, self.session_expiry = protocol, clean, session_expiry
        self.c = mqtt.Client(**kw)
        self.c.username_pw_set(username, password)
        if will is not None:
            self.c.will_set(**will)
        self.connacks = queue.Queue()
        self.messages = queue.Queue()
        self.subacks = queue.Queue()
        self.published = queue.Queue()
        self.c.on_connect = lambda _c, _u, flags, rc, props=None: self.connacks.put((flags, rc))
        self.c.on_message = lambda _c, _u, m: self.messages.put(m)
        self.c.on_subscribe = lambda _c, _u, mid, granted, props=None: self.subacks.put(granted)
        self.c.on_publish = lambda _c, _u, mid: self.published.put(mid)

    def connect(self):
        host, port = mqtt_addr()
        kw = {}
        if self.protocol == mqtt.MQTTv5:
            kw["clean_start"] = self.clean
            if self.session_expiry is not None:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.session_expiry
                kw["properties"] = props
        self.c.connect(host, port, keepalive=30, **kw)
        self.c.loop_start()
        return self.connacks.get(timeout=5)

    def subscribe(self, topic, qos):
        self.c.subscribe(topic, qos)
        return self.subacks.get(timeout=5)

    def next(self, timeout=5):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def reason(rc):
    """A CONNACK result as a number, for 3.1.1 (int) and 5 (ReasonCodes)."""
    return rc if isinstance(rc, int) else rc.value


def uid(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def body(c, conn, cleanup):
    ch = conn.channel()
    run_id = uuid.uuid4().hex[:8]

    # AMQP -> MQTT 3.1.1: a publish to amq.topic with key a.b.c reaches a
    # subscriber of a/+/c at QoS 1.
    sub = Client(uid("paho-sub"))
    flags, rc = sub.connect()
    c.equal(reason(rc), 0, "MQTT 3.1.1 CONNECT is accepted")
    granted = sub.subscribe("sensors/%s/+/temp" % run_id, 1)
    c.equal(list(granted), [1], "SUBSCRIBE is granted QoS 1")
    ch.basic_publish(exchange="amq.topic", routing_key="sensors.%s.dev1.temp" % run_id, body=b"21.5",
                     properties=pika.BasicProperties(delivery_mode=2))
    m = sub.next()
    if c.check(m is not None, "a pika publish to amq.topic reaches the paho subscriber"):
        c.equal(m.topic, "sensors/%s/dev1/temp" % run_id, "the routing key arrives as a topic")
        c.equal(m.payload, b"21.5", "payload")
        c.equal(m.qos, 1, "a persistent message arrives at QoS 1")
    sub.close()

    # MQTT 5 -> AMQP: properties map onto AMQP properties and headers.
    q = declare(ch, "q.mqtt", None, cleanup)
    ch.queue_bind(queue=q, exchange="amq.topic", routing_key="devices.%s.#" % run_id)
    pub = Client(uid("paho-pub5"), protocol=mqtt.MQTTv5)
    flags, rc = pub.connect()
    c.equal(reason(rc), 0, "MQTT 5 CONNECT is accepted")
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    props.CorrelationData = b"req-42"
    props.ResponseTopic = "replies/%s" % run_id
    props.UserProperty = [("tenant", "acme")]
    info = pub.c.publish("devices/%s/d7/status" % run_id, b'{"ok":true}', qos=1, properties=props)
    info.wait_for_publish(timeout=5)
    c.check(info.is_published(), "the QoS 1 publish is acknowledged")
    method, bprops, msg = get_wait(conn, ch, q)
    if c.check(method is not None, "the MQTT publish reaches a pika queue bound with devices.<id>.#"):
        c.equal(method.routing_key, "devices.%s.d7.status" % run_id, "the topic arrives as routing key")
        c.equal(msg, b'{"ok":true}', "body")
        c.equal(bprops.content_type, "application/json", "content type")
        c.equal(bprops.correlation_id, "req-42", "correlation data becomes correlation-id")
        c.equal(bprops.reply_to, "replies.%s" % run_id, "response topic becomes reply-to")
        c.equal(bprops.delivery_mode, 2, "a QoS 1 publish is persistent")
        headers = bprops.headers or {}
        c.equal(headers.get("tenant"), "acme", "user properties become headers")
    pub.close()

    # Retained messages reach later subscribers with the retain flag.
    topic = "retained/%s/lamp" % run_id
    pub = Client(uid("paho-ret"))
    pub.connect()
    info = pub.c.publish(topic, b"on", qos=1, retain=True)
    info.wait_for_publish(timeout=5)
    pub.close()
    late = Client(uid("paho-late"))
    late.connect()
    late.subscribe("retained/%s/#" % run_id, 1)
    m = late.next()
    if c.check(m is not None, "a later subscriber gets the retained message"):
        c.equal((m.topic, m.payload, bool(m.retain)), (topic, b"on", True), "retained topic, payload and flag")
    late.close()

    # A persistent session keeps its subscription and the messages queued
    # while it was away.
    cid = uid("paho-persist")
    s = Client(cid, clean=False)
    flags, rc = s.connect()
    c.equal(flags.get("session present"), 0, "a new persistent session is not present yet")
    s.subscribe("alerts/%s/#" % run_id, 1)
    s.close()
    for i in range(3):
        ch.basic_publish(exchange="amq.topic", routing_key="alerts.%s.%d" % (run_id, i), body=b"a%d" % i,
                         properties=pika.BasicProperties(delivery_mode=2))
    s = Client(cid, clean=False)
    flags, rc = s.connect()
    c.equal(flags.get("session present"), 1, "the session is present on reconnect")
    got = [s.next() for _ in range(3)]
    c.equal([m.payload if m else None for m in got], [b"a0", b"a1", b"a2"],
            "messages published while away arrive in order")
    s.close()
    s = Client(cid, clean=True)  # end the session
    s.connect()
    s.close()

    # A will is published when the connection drops without DISCONNECT.
    wq = declare(ch, "q.will", None, cleanup)
    ch.queue_bind(queue=wq, exchange="amq.topic", routing_key="wills.%s" % run_id)
    w = Client(uid("paho-will"), will={"topic": "wills/%s" % run_id, "payload": b"gone", "qos": 1})
    w.connect()
    w.c.loop_stop()
    w.c.socket().shutdown(socket.SHUT_RDWR)
    w.c.socket().close()
    method, _, msg = get_wait(conn, ch, wq)
    c.check(method is not None and msg == b"gone", "the will reaches a pika queue after an abrupt close", msg)

    # Bad credentials: CONNACK 4, bad user name or password (3.1.1, as
    # RabbitMQ answers), and 0x86 (5).
    bad = Client(uid("paho-bad"), password="wrong")
    flags, rc = bad.connect()
    c.equal(reason(rc), 4, "MQTT 3.1.1 with a wrong password gets CONNACK 4 (bad user name or password)")
    bad.c.loop_stop()
    bad = Client(uid("paho-bad5"), protocol=mqtt.MQTTv5, password="wrong")
    flags, rc = bad.connect()
    c.equal(reason(rc), 0x86, "MQTT 5 with a wrong password gets CONNACK 0x86")
    bad.c.loop_stop()


if __name__ == "__main__":
    run("mqtt_paho", body)
