package stomp

import (
	"strings"
)

// Destinations, as RabbitMQ's STOMP plugin names them.

type destKind uint8

const (
	destQueue      destKind = iota + 1 // /queue/q: queue q, declared on first use
	destAmqQueue                       // /amq/queue/q: existing queue q
	destTopic                          // /topic/k: amq.topic, key k
	destExchange                       // /exchange/e/k: exchange e, key k
	destTempQueue                      // /temp-queue/x: private reply queue (reply-to only)
	destReplyQueue                     // /reply-queue/q: a temp queue's real name
)

const (
	prefixQueue      = "/queue/"
	prefixAmqQueue   = "/amq/queue/"
	prefixTopic      = "/topic/"
	prefixExchange   = "/exchange/"
	prefixTempQueue  = "/temp-queue/"
	prefixReplyQueue = "/reply-queue/"
	topicExchange    = "amq.topic"
)

// dest is a parsed destination.
type dest struct {
	kind destKind
	name string // queue (queue kinds), exchange (exchange and topic) or temp name
	key  string // routing or binding key (topic, exchange)
}

// parseDest parses a destination header.
func parseDest(s string) (dest, error) {
	cut := func(prefix string) (string, bool) { return strings.CutPrefix(s, prefix) }
	if s == "" {
		return dest{}, protoErr("Missing destination", "the frame needs a destination header")
	}
	if q, ok := cut(prefixQueue); ok && q != "" {
		return dest{kind: destQueue, name: q}, nil
	}
	if q, ok := cut(prefixAmqQueue); ok && q != "" {
		return dest{kind: destAmqQueue, name: q}, nil
	}
	if k, ok := cut(prefixTopic); ok && k != "" {
		return dest{kind: destTopic, name: topicExchange, key: k}, nil
	}
	if rest, ok := cut(prefixExchange); ok && rest != "" {
		x, k, _ := strings.Cut(rest, "/")
		if x != "" {
			return dest{kind: destExchange, name: x, key: k}, nil
		}
	}
	if t, ok := cut(prefixTempQueue); ok && t != "" {
		return dest{kind: destTempQueue, name: t}, nil
	}
	if q, ok := cut(prefixReplyQueue); ok && q != "" {
		return dest{kind: destReplyQueue, name: q}, nil
	}
	return dest{}, protoErr("Unknown destination", "'%s' is not a valid destination; valid are /queue/name, /amq/queue/name, /topic/key, /exchange/name[/key], /temp-queue/name (in reply-to) and /reply-queue/name", s)
}

// publishTarget is the exchange and routing key a SEND to d goes to.
func (d dest) publishTarget() (exchange, key string) {
	switch d.kind {
	case destQueue, destAmqQueue, destReplyQueue:
		return "", d.name
	default:
		return d.name, d.key
	}
}

// destinationOf is the destination header of a message published to
// exchange with key, as a STOMP client would have named it.
func destinationOf(exchange, key string) string {
	switch {
	case exchange == "" && strings.HasPrefix(key, "amq.gen-"):
		return prefixReplyQueue + key
	case exchange == "":
		return prefixQueue + key
	case exchange == topicExchange:
		return prefixTopic + key
	case key == "":
		return prefixExchange + exchange
	}
	return prefixExchange + exchange + "/" + key
}
