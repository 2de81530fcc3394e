package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/unifiedms/ums/core"
)

// Descriptions of the core's metrics. Those named rabbitmq_* mean what
// rabbitmq_prometheus means by them.
var (
	identityDesc    = desc("rabbitmq_identity_info", "Node and cluster names, for joins in RabbitMQ's dashboards.", "rabbitmq_node", "rabbitmq_cluster")
	connectionsDesc = desc("rabbitmq_connections", "Client connections open, all protocols.")
	channelsDesc    = desc("rabbitmq_channels", "Channels open (AMQP channels, MQTT and STOMP sessions).")
	consumersDesc   = desc("rabbitmq_consumers", "Consumers on all queues.")
	queuesDesc      = desc("rabbitmq_queues", "Queues declared.")
	memAlarmDesc    = desc("rabbitmq_alarms_memory_used_watermark", "1 when the memory alarm is raised (publishers blocked), else 0.")
	diskAlarmDesc   = desc("rabbitmq_alarms_free_disk_space_watermark", "1 when the free disk space alarm is raised (publishers blocked), else 0.")
	faultDesc       = desc("ums_faults", "Storage faults raised (for example a failed definition write).")
	mqttDesc        = desc("ums_mqtt_sessions", "MQTT client connections open.")
	stompDesc       = desc("ums_stomp_sessions", "STOMP client connections open.")
	connsByProto    = desc("ums_connections", "Client connections open, by protocol.", "protocol")

	receivedDesc     = desc("rabbitmq_global_messages_received_total", "Messages received from publishers.")
	deliveredDesc    = desc("rabbitmq_global_messages_delivered_total", "Messages delivered to consumers or fetched by basic.get.")
	redeliveredDesc  = desc("rabbitmq_global_messages_redelivered_total", "Deliveries of messages delivered before.")
	acknowledgedDesc = desc("rabbitmq_global_messages_acknowledged_total", "Deliveries acknowledged by clients.")
	confirmedDesc    = desc("rabbitmq_global_messages_confirmed_total", "Publisher confirms sent.")
)

// queueMetric names, in the order queueValues fills them.
var queueNames = []struct{ name, help string }{
	{"rabbitmq_queue_messages_ready", "Messages ready to be delivered."},
	{"rabbitmq_queue_messages_unacked", "Messages delivered and not yet acknowledged."},
	{"rabbitmq_queue_messages", "Messages ready and unacknowledged."},
	{"rabbitmq_queue_consumers", "Consumers on the queue."},
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// coreCollector reads the core at each scrape.
type coreCollector struct {
	b        *core.Broker
	perQueue bool
	node     string
	queue    []*prometheus.Desc // queueNames, with labels when perQueue
}

func newCoreCollector(b *core.Broker, perQueue bool, node string) *coreCollector {
	c := &coreCollector{b: b, perQueue: perQueue, node: node}
	var labels []string
	if perQueue {
		labels = []string{"vhost", "queue"}
	}
	for _, q := range queueNames {
		c.queue = append(c.queue, desc(q.name, q.help, labels...))
	}
	return c
}

// Describe sends every description.
func (c *coreCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{identityDesc, connectionsDesc, channelsDesc, consumersDesc, queuesDesc,
		memAlarmDesc, diskAlarmDesc, faultDesc, mqttDesc, stompDesc, connsByProto,
		receivedDesc, deliveredDesc, redeliveredDesc, acknowledgedDesc, confirmedDesc} {
		ch <- d
	}
	for _, d := range c.queue {
		ch <- d
	}
}

// Collect reads connections, queues, alarms and counters. Each queue is
// read under its own lock, one at a time, as the management API's
// listings do. The server's own connections (the notification pipeline's,
// a management API call's) are left out; queues are those the management
// API lists.
func (c *coreCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(identityDesc, 1, c.node, "ums")

	conns := c.b.Connections()
	channels := 0
	byProto := map[string]int{"amqp": 0, "mqtt": 0, "stomp": 0}
	clients := 0
	for _, cn := range conns {
		p := protocolOf(cn.Info().Protocol)
		if p == "internal" || p == "http" {
			continue // the notification pipeline's own, a management API call's
		}
		clients++
		channels += cn.Channels()
		byProto[p]++
	}
	gauge(connectionsDesc, float64(clients))
	gauge(channelsDesc, float64(channels))
	gauge(mqttDesc, float64(byProto["mqtt"]))
	gauge(stompDesc, float64(byProto["stomp"]))
	for p, n := range byProto {
		gauge(connsByProto, float64(n), p)
	}

	descs := c.queue
	var queues, consumers, ready, unacked int
	for _, v := range c.b.Vhosts() {
		for _, q := range v.Queues() {
			r, cs := q.Counts()
			u := q.Unacked()
			queues++
			consumers += cs
			ready += r
			unacked += u
			if c.perQueue {
				for i, val := range []int{r, u, r + u, cs} {
					gauge(descs[i], float64(val), v.Name, q.Name)
				}
			}
		}
	}
	if !c.perQueue {
		for i, val := range []int{ready, unacked, ready + unacked, consumers} {
			gauge(descs[i], float64(val))
		}
	}
	gauge(queuesDesc, float64(queues))
	gauge(consumersDesc, float64(consumers))

	var mem, disk, faults float64
	for _, a := range c.b.Alarms() {
		switch {
		case a.Name == "memory":
			mem = 1
		case a.Name == "disk":
			disk = 1
		case !a.Blocking:
			faults++
		}
	}
	gauge(memAlarmDesc, mem)
	gauge(diskAlarmDesc, disk)
	gauge(faultDesc, faults)

	st := c.b.Stats()
	counter(receivedDesc, st.Received)
	counter(deliveredDesc, st.Delivered)
	counter(redeliveredDesc, st.Redelivered)
	counter(acknowledgedDesc, st.Acknowledged)
	counter(confirmedDesc, st.Confirmed)
}
