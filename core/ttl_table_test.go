package core

import (
	"fmt"
	"testing"
	"time"
)

// Per-queue (x-message-ttl) and per-message (expiration) time to live on
// the fake clock: a message is gone for basic.get, consumers and the
// message count once its TTL has passed, the lower of the two TTLs
// applies, expired messages are dead-lettered with reason expired wherever
// they are in the queue, and a delivered message does not expire while a
// consumer holds it.
func TestTableMessageTTL(t *testing.T) {
	ms := time.Millisecond
	rows := []row{
		// Expired messages are never delivered, whichever TTL applies.
		{name: "queue TTL", args: Table{"x-message-ttl": int32(100)}, steps: expiredNeverDelivered(msg{body: "a"}, msg{body: "b"})},
		{name: "message TTL", steps: expiredNeverDelivered(msg{body: "a", expiration: "100"}, msg{body: "b", expiration: "100"})},
		{name: "message TTL below queue TTL", args: Table{"x-message-ttl": int64(60000)},
			steps: expiredNeverDelivered(msg{body: "a", expiration: "100"}, msg{body: "b", expiration: "100"})},
		{name: "queue TTL below message TTL", args: Table{"x-message-ttl": int32(100)},
			steps: expiredNeverDelivered(msg{body: "a", expiration: "60000"}, msg{body: "b", expiration: "60000"})},

		{name: "unexpired delivered with their expiration", args: Table{"x-message-ttl": int32(60000)}, steps: []step{
			pubm("q", msg{body: "a"}, msg{body: "b", expiration: "60000"}),
			advance(59 * time.Second),
			consume("q", "c", 0),
			wantDelivered("c", "a", "b"),
			wantMsg("a", wantExpiration("")),
			wantMsg("b", wantExpiration("60000")),
		}},
		{name: "each message counts from its own enqueue", args: Table{"x-message-ttl": int32(100)}, steps: []step{
			pub("q", "early"),
			advance(60 * ms),
			pub("q", "late"),
			advance(41 * ms),
			wantCounts("q", 1, 0, 0),
			advance(60 * ms),
			wantCounts("q", 0, 0, 0),
			wantDrain("q"),
		}},

		// UMS sweeps the whole queue: an expired message behind one that
		// does not expire is dead-lettered at its expiry, the head stays.
		{name: "message TTL behind the head", dlx: true, args: Table{"x-dead-letter-exchange": "dlx"}, steps: []step{
			pubm("q", msg{body: "head"}, msg{body: "short", expiration: "300"}),
			advance(299 * ms),
			wantDelivered("dead"),
			advance(2 * ms),
			wantDelivered("dead", "short"),
			wantDeaths("short", death{1, ReasonExpired, "q", "", []string{"q"}, "300"}),
			wantMsg("short", wantExpiration("")),
			wantDrain("q", "head"),
		}},
		{name: "mixed expirations leave in expiry order", dlx: true, args: Table{"x-dead-letter-exchange": "dlx"}, steps: []step{
			pubm("q", msg{body: "a", expiration: "1000"}, msg{body: "b", expiration: "100"}, msg{body: "c"}, msg{body: "d", expiration: "50"}),
			advance(51 * ms),
			wantDelivered("dead", "d"),
			advance(50 * ms),
			wantDelivered("dead", "b"),
			wantCounts("q", 2, 0, 0),
			wantDrain("q", "a", "c"),
		}},
		{name: "queue TTL in a priority queue", dlx: true, args: Table{"x-message-ttl": int32(100), "x-max-priority": int32(5), "x-dead-letter-exchange": "dlx"}, steps: []step{
			pubm("q", msg{body: "low", prio: 1}, msg{body: "high", prio: 5}),
			advance(50 * ms),
			pubm("q", msg{body: "later", prio: 1}),
			advance(51 * ms),
			wantDelivered("dead", "low", "high"),
			wantDrain("q", "later"),
		}},

		// Dead-lettered expired messages lose their expiration; x-death
		// keeps the original one.
		{name: "dead letter of queue TTL", dlx: true, args: Table{"x-message-ttl": int32(50), "x-dead-letter-exchange": "dlx"}, steps: expiredDeadLetter(msg{body: "old", headers: Table{"app": "kept"}})},
		{name: "dead letter of message TTL", dlx: true, args: Table{"x-dead-letter-exchange": "dlx"}, steps: expiredDeadLetter(msg{body: "old", expiration: "50", headers: Table{"app": "kept"}})},

		// TTL 0: delivered only when a consumer can take it at once.
		{name: "expiration 0 without consumer", dlx: true, args: Table{"x-dead-letter-exchange": "dlx"}, steps: ttlZero(msg{body: "nobody", expiration: "0"}, msg{body: "taken", expiration: "0"})},
		{name: "x-message-ttl 0 without consumer", dlx: true, args: Table{"x-message-ttl": int32(0), "x-dead-letter-exchange": "dlx"}, steps: ttlZero(msg{body: "nobody"}, msg{body: "taken"})},
		{name: "expiration 0 with a full consumer", dlx: true, args: Table{"x-dead-letter-exchange": "dlx"}, steps: []step{
			consume("q", "c", 1),
			pubm("q", msg{body: "first"}, msg{body: "zero", expiration: "0"}),
			wantDelivered("c", "first"),
			wantDelivered("dead", "zero"), // at once, as RabbitMQ: no sweep needed
			ack("first"),
			wantDelivered("c"),
			wantCounts("q", 0, 0, 1),
		}},

		// Consumers busy with unacknowledged messages: the ready ones
		// expire meanwhile; the held one does not.
		{name: "expiry while the consumer is busy", dlx: true, args: Table{"x-message-ttl": int32(100), "x-dead-letter-exchange": "dlx"}, steps: []step{
			consume("q", "c", 1),
			pub("q", "a", "b", "c"),
			wantDelivered("c", "a"),
			advance(99 * ms),
			wantCounts("q", 2, 1, 1),
			advance(2 * ms),
			wantDelivered("dead", "b", "c"),
			wantCounts("q", 0, 1, 1),
			ack("a"),
			wantDelivered("c"),
			pub("q", "d"),
			wantDelivered("c", "d"),
		}},
		{name: "held past its TTL, then requeued", dlx: true, args: Table{"x-message-ttl": int32(200), "x-dead-letter-exchange": "dlx"}, steps: []step{
			pub("q", "held"),
			consume("q", "c", 0),
			wantDelivered("c", "held"),
			advance(400 * ms),
			wantDelivered("dead"),
			wantCounts("q", 0, 1, 1),
			nack("held", true),
			wantDelivered("dead", "held"),
			wantDeaths("held", death{1, ReasonExpired, "q", "", []string{"q"}, ""}),
			wantDelivered("c"),
			wantCounts("q", 0, 0, 1),
		}},
		{name: "held past its TTL, session closed without consumers", dlx: true, args: Table{"x-message-ttl": int32(200), "x-dead-letter-exchange": "dlx"}, steps: []step{
			pub("q", "held"),
			consume("q", "c", 0),
			wantDelivered("c", "held"),
			advance(300 * ms),
			closeSession("c"),
			advance(minSweepInterval + ms),
			wantDelivered("dead", "held"),
			wantDrain("q"),
		}},
		{name: "requeued within its TTL keeps its expiry", dlx: true, args: Table{"x-message-ttl": int32(200), "x-dead-letter-exchange": "dlx"}, steps: []step{
			pub("q", "m"),
			get("q", "m"),
			advance(100 * ms),
			nack("m", true),
			wantCounts("q", 1, 0, 0),
			advance(99 * ms),
			wantCounts("q", 1, 0, 0),
			advance(2 * ms),
			wantDelivered("dead", "m"),
			wantCounts("q", 0, 0, 0),
		}},
	}
	runRows(t, rows)
}

func wantExpiration(want string) func(m *Message) error {
	return func(m *Message) error {
		if m.Props.Expiration != want {
			return fmt.Errorf("expiration %q, want %q", m.Props.Expiration, want)
		}
		return nil
	}
}

// expiredNeverDelivered publishes ms, whose TTL is 100 ms, and checks they
// are counted until then and gone afterwards for count, get and consumers.
func expiredNeverDelivered(ms ...msg) []step {
	return []step{
		pubm("q", ms...),
		advance(99 * time.Millisecond),
		wantCounts("q", len(ms), 0, 0),
		advance(2 * time.Millisecond),
		wantCounts("q", 0, 0, 0),
		get("q", ""),
		consume("q", "c", 0),
		wantDelivered("c"),
	}
}

// expiredDeadLetter publishes m (TTL 50 ms) through a direct exchange with
// key rk and checks its dead letter.
func expiredDeadLetter(m msg) []step {
	return []step{
		exchange("src", KindDirect),
		bindQ("q", "src", "rk"),
		pubx("src", "rk", m),
		advance(49 * time.Millisecond),
		wantDelivered("dead"),
		advance(2 * time.Millisecond),
		wantDelivered("dead", m.body),
		wantMsg(m.body, func(d *Message) error {
			if d.Props.Expiration != "" || d.Props.Present&PresentExpiration != 0 {
				return fmt.Errorf("dead letter has expiration %q (present %v), want none", d.Props.Expiration, d.Props.Present&PresentExpiration != 0)
			}
			if d.Exchange != "dlx" || d.RoutingKey != "rk" {
				return fmt.Errorf("dead-lettered through %q with key %q, want \"dlx\" with the original key \"rk\"", d.Exchange, d.RoutingKey)
			}
			return nil
		}),
		wantHeader(m.body, "app", "kept"),
		wantDeaths(m.body, death{1, ReasonExpired, "q", "src", []string{"rk"}, m.expiration}),
		wantDeathSummary(m.body, [3]string{ReasonExpired, "q", "src"}, [3]string{ReasonExpired, "q", "src"}),
		wantDrain("q"),
	}
}

// ttlZero publishes nobody (TTL 0) to a queue without consumers, which
// expires it at once (as RabbitMQ: dead-lettered on publish, never counted
// as ready), then taken with a consumer ready, which gets it.
func ttlZero(nobody, taken msg) []step {
	return []step{
		pubm("q", nobody),
		wantCounts("q", 0, 0, 0),
		wantDelivered("dead", nobody.body),
		consume("q", "c", 0),
		pubm("q", taken),
		wantDelivered("c", taken.body),
		advance(time.Second),
		wantDelivered("dead"),
	}
}

// x-expires: a queue unused for the period is deleted; consumers keep it,
// and basic.get and re-declaration renew the period, publishing does not.
func TestTableQueueExpires(t *testing.T) {
	ms := time.Millisecond
	args := Table{"x-expires": int32(300)}
	// renewed uses the queue every 200 ms for a second with use, then
	// leaves it; it is deleted 300 ms after the last use.
	renewed := func(first, check step, use func(i int) step) []step {
		steps := []step{first}
		for i := range 5 {
			steps = append(steps, advance(200*ms), use(i))
		}
		return append(steps, check, advance(299*ms), wantExists("q", true), advance(ms), wantExists("q", false))
	}
	redeclare := func(int) step { return declare("q", args) }
	getEmpty := func(int) step { return get("q", "") }

	rows := []row{
		{name: "unused", args: Table{"x-expires": int32(300)}, steps: []step{
			wantExists("q", true),
			advance(299 * ms),
			wantExists("q", true),
			advance(ms),
			wantExists("q", false),
		}},
		{name: "unused with messages", args: Table{"x-expires": int32(300)}, steps: []step{
			pub("q", "a", "b"),
			advance(300 * ms),
			wantExists("q", false),
		}},
		{name: "publishing is no use", args: Table{"x-expires": int32(300)}, steps: []step{
			advance(200 * ms),
			pub("q", "a"),
			advance(100 * ms),
			wantExists("q", false),
		}},
		{name: "consumed, then cancelled", args: Table{"x-expires": int32(200)}, steps: []step{
			consume("q", "c", 0),
			advance(700 * ms),
			wantExists("q", true),
			pub("q", "alive"),
			wantDelivered("c", "alive"),
			ack("alive"),
			cancel("c"),
			advance(199 * ms),
			wantExists("q", true),
			advance(ms),
			wantExists("q", false),
		}},
		{name: "consumer's session closed", args: Table{"x-expires": int32(200)}, steps: []step{
			advance(150 * ms),
			consume("q", "c", 0),
			advance(time.Second),
			closeSession("c"),
			advance(199 * ms),
			wantExists("q", true),
			advance(ms),
			wantExists("q", false),
		}},
		{name: "renewed by basic.get", args: args, steps: renewed(wantExists("q", true), wantExists("q", true), getEmpty)},
		// The marker message shows it is still the same queue, not one
		// the re-declaration created anew.
		{name: "renewed by re-declaration", args: args, steps: renewed(pub("q", "marker"), wantCounts("q", 1, 0, 0), redeclare)},
		{name: "renewed by get and re-declaration", args: args, steps: renewed(wantExists("q", true), wantExists("q", true), func(i int) step {
			if i%2 == 0 {
				return getEmpty(i)
			}
			return redeclare(i)
		})},
	}
	runRows(t, rows)
}
