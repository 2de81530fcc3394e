package mqtt

import "strings"

// Topic names and filters become routing keys and binding keys the way
// RabbitMQ's MQTT plugin does it: the level separator '/' and the AMQP word
// separator '.' swap places, and the single-level wildcard '+' becomes '*'.
// The swap is its own inverse, so a topic containing '.' survives the round
// trip: MQTT "a/b.c" is routing key "a.b/c", a single word "b/c" at level 2,
// and an AMQP publisher's key "a.b/c" reaches MQTT subscribers of "a/b.c".
//
// The session's queues report which binding keys a delivery matched
// (core.QueueOptions.ReportBindings), so the adapter keeps no routing table:
// a delivery goes out for the subscriptions bound with those keys. Two MQTT
// rules the core's topic matching does not know are applied on top (see
// filterAccepts): wildcards do not match topics starting with '$', and a
// filter level holding a literal '*' (legal in MQTT) turns into the AMQP
// wildcard, so such a filter binds more widely than MQTT matches and is
// checked against the topic itself.

// topicToKey converts an MQTT topic name into a routing key.
func topicToKey(topic string) string {
	return swapSeparators(topic, false)
}

// keyToTopic converts a routing key into an MQTT topic name.
func keyToTopic(key string) string {
	return swapSeparators(key, false)
}

// filterToKey converts an MQTT topic filter (without any $share prefix) into
// a binding key for a topic exchange.
func filterToKey(filter string) string {
	return swapSeparators(filter, true)
}

func swapSeparators(s string, filter bool) string {
	if !strings.ContainsAny(s, "/.+") {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		switch c {
		case '/':
			b[i] = '.'
		case '.':
			b[i] = '/'
		case '+':
			if filter {
				b[i] = '*'
			}
		}
	}
	return string(b)
}

const (
	sharePrefix = "$share/"
	sysPrefix   = '$'
)

// parseShared splits "$share/group/filter" into its group and filter. ok is
// false for a filter that is not a shared subscription.
func parseShared(filter string) (group, inner string, ok bool) {
	if !strings.HasPrefix(filter, sharePrefix) {
		return "", filter, false
	}
	rest := filter[len(sharePrefix):]
	i := strings.IndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", filter, false
	}
	return rest[:i], rest[i+1:], true
}

// matchFilter reports whether an MQTT topic name matches a topic filter (not
// a shared one). Topics starting with '$' are not matched by filters
// starting with a wildcard [MQTT-4.7.2-1].
// filterAccepts reports whether a delivery whose routing key matched the
// binding key of filter is for filter's subscription: false when filter
// starts with a wildcard and topic with '$' [MQTT-4.7.2-1], and for a
// filter with a literal '*' (which binds as a wildcard) that does not match
// topic.
func filterAccepts(filter, topic string, literalStar bool) bool {
	if len(topic) > 0 && topic[0] == sysPrefix && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	return !literalStar || matchFilter(filter, topic)
}

func matchFilter(filter, topic string) bool {
	if len(topic) > 0 && topic[0] == sysPrefix && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := cutLevel(filter)
		if fl == "#" && !fmore {
			return true
		}
		tl, trest, tmore := cutLevel(topic)
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			if fmore {
				// "a/#" also matches "a" [MQTT-4.7.1-2].
				return frest == "#"
			}
			return !tmore
		}
		filter, topic = frest, trest
	}
}

// cutLevel returns the first level of s and the rest after its separator.
func cutLevel(s string) (level, rest string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// validTopicName reports whether s is a legal topic name for PUBLISH.
func validTopicName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "+#\x00")
}
