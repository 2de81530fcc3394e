package core

import (
	"fmt"
	"testing"
	"time"
)

// Dead-lettering: rejected, expired, maxlen and delivery_limit messages go
// to the queue's dead-letter exchange (with x-dead-letter-routing-key
// replacing the key) carrying the x-death history RabbitMQ writes; without
// a dead-letter exchange, or with a missing one, they are dropped; cycles
// without a rejection are dropped, the retry pattern is not.
func TestTableDeadLetter(t *testing.T) {
	ms := time.Millisecond
	dl := Table{"x-dead-letter-exchange": "dlx"}
	job := msg{body: "job", headers: Table{"app": "kept"}}

	rows := []row{
		// One row per reason, each with its x-death entry.
		{name: "rejected by a consumer", dlx: true, args: dl, steps: rejectedByConsumer(nack("job", false))},
		{name: "rejected after basic.get", dlx: true, args: dl, steps: []step{
			exchange("src", KindDirect),
			bindQ("q", "src", "orders"),
			pubx("src", "orders", job),
			get("q", "job"),
			nack("job", false),
			wantDelivered("dead", "job"),
			wantDeaths("job", death{1, ReasonRejected, "q", "src", []string{"orders"}, ""}),
			wantDrain("q"),
		}},
		{name: "rejected, multiple", dlx: true, args: dl, steps: []step{
			pub("q", "a", "b", "c"),
			consume("q", "c", 0),
			wantDelivered("c", "a", "b", "c"),
			do("nack multiple up to b", func(e *env) {
				if err := e.held["b"].s.Nack(e.held["b"].d.Tag, true, false); err != nil {
					e.fatalf("nack: %v", err)
				}
			}),
			wantDelivered("dead", "a", "b"),
			wantCounts("q", 0, 1, 1),
			ack("c"),
			wantDelivered("dead"),
		}},
		{name: "expired", dlx: true, args: Table{"x-dead-letter-exchange": "dlx", "x-message-ttl": int32(50)}, steps: []step{
			pub("q", "m"),
			advance(51 * ms),
			wantDelivered("dead", "m"),
			wantDeaths("m", death{1, ReasonExpired, "q", "", []string{"q"}, ""}),
			wantDeathSummary("m", [3]string{ReasonExpired, "q", ""}, [3]string{ReasonExpired, "q", ""}),
		}},
		{name: "maxlen", dlx: true, args: Table{"x-dead-letter-exchange": "dlx", "x-max-length": int32(1)}, steps: []step{
			pub("q", "old", "new"),
			wantDelivered("dead", "old"),
			wantDeaths("old", death{1, ReasonMaxLen, "q", "", []string{"q"}, ""}),
			wantDrain("q", "new"),
		}},
		{name: "delivery_limit", dlx: true, args: Table{"x-dead-letter-exchange": "dlx", "x-delivery-limit": int32(0)}, steps: []step{
			pub("q", "m"),
			get("q", "m"),
			nack("m", true),
			wantDelivered("dead", "m"),
			wantDeaths("m", death{1, ReasonDeliveryLimit, "q", "", []string{"q"}, ""}),
			wantDrain("q"),
		}},

		// Where dead letters go.
		{name: "x-dead-letter-routing-key", args: Table{"x-dead-letter-exchange": "dlx.direct", "x-dead-letter-routing-key": "dead.key"}, steps: []step{
			exchange("dlx.direct", KindDirect),
			declare("hit", nil),
			declare("miss", nil),
			bindQ("hit", "dlx.direct", "dead.key"),
			bindQ("miss", "dlx.direct", "work"),
			bindQ("q", "amq.direct", "work"),
			pubx("amq.direct", "work", msg{body: "job"}),
			get("q", "job"),
			nack("job", false),
			wantDrain("miss"),
			wantDrain("hit", "job"),
			wantMsg("job", wantRoute("dlx.direct", "dead.key")),
			wantDeaths("job", death{1, ReasonRejected, "q", "amq.direct", []string{"work"}, ""}),
			wantDrain("q"),
		}},
		{name: "default exchange as dead-letter exchange", args: Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "parking"}, steps: []step{
			declare("parking", nil),
			pub("q", "m"),
			get("q", "m"),
			nack("m", false),
			wantDrain("parking", "m"),
			wantMsg("m", wantRoute("", "parking")),
		}},
		{name: "without a dead-letter exchange", steps: []step{
			declare("bystander", nil),
			pub("q", "a"),
			get("q", "a"),
			nack("a", false),
			wantDrain("q"),
			wantDrain("bystander"),
		}},
		{name: "missing dead-letter exchange", args: Table{"x-dead-letter-exchange": "x.missing"}, steps: []step{
			pub("q", "a"),
			get("q", "a"),
			nack("a", false),
			wantCounts("q", 0, 0, 0),
			pub("q", "b"),
			wantDrain("q", "b"),
		}},
		{name: "acknowledged and requeued messages are not dead-lettered", dlx: true, args: dl, steps: []step{
			pub("q", "a", "b"),
			get("q", "a"),
			ack("a"),
			get("q", "b"),
			nack("b", true),
			wantDelivered("dead"),
			wantDrain("q", "b!"),
		}},

		// Cycles: without a rejection the copy that would loop is dropped.
		{name: "cycle to itself", dlx: true, args: Table{"x-message-ttl": int32(50), "x-dead-letter-exchange": "dlx"}, steps: []step{
			bindQ("q", "dlx", ""),
			pub("q", "loop"),
			advance(51 * ms),
			wantDelivered("dead", "loop"),
			wantCounts("q", 0, 0, 0),
			advance(time.Second),
			wantDelivered("dead"),
			wantDrain("q"),
		}},
		{name: "cycle A to B to A", args: Table{"x-message-ttl": int32(50), "x-dead-letter-exchange": "toB"}, steps: []step{
			exchange("toB", KindFanout),
			exchange("toA", KindFanout),
			declare("b", Table{"x-message-ttl": int32(50), "x-dead-letter-exchange": "toA"}),
			declare("watchA", nil),
			declare("watchB", nil),
			bindQ("b", "toB", ""),
			bindQ("watchB", "toB", ""),
			bindQ("q", "toA", ""),
			bindQ("watchA", "toA", ""),
			pub("q", "loop"),
			advance(51 * ms),
			wantCounts("b", 1, 0, 0),
			advance(51 * ms),
			wantCounts("q", 0, 0, 0),
			wantCounts("b", 0, 0, 0),
			advance(time.Second),
			wantDrain("q"),
			wantDrain("b"),
			wantDrain("watchB", "loop"),
			wantDeaths("loop", death{1, ReasonExpired, "q", "", []string{"q"}, ""}),
			wantDrain("watchA", "loop"),
			wantDeaths("loop",
				death{1, ReasonExpired, "b", "toB", []string{"q"}, ""},
				death{1, ReasonExpired, "q", "", []string{"q"}, ""}),
			wantDeathSummary("loop", [3]string{ReasonExpired, "q", ""}, [3]string{ReasonExpired, "b", "toB"}),
		}},
		{name: "retry cycle through a rejection", args: Table{"x-dead-letter-exchange": "retryX", "x-dead-letter-routing-key": "later"}, steps: retryCycle(3)},
	}
	runRows(t, rows)
}

func wantRoute(exchange, key string) func(m *Message) error {
	return func(m *Message) error {
		if m.Exchange != exchange || m.RoutingKey != key {
			return fmt.Errorf("came through %q with key %q, want %q with %q", m.Exchange, m.RoutingKey, exchange, key)
		}
		return nil
	}
}

// rejectedByConsumer publishes "job" through a direct exchange with key orders,
// lets consumer c refuse it with refuse, and checks the dead letter.
func rejectedByConsumer(refuse step) []step {
	return []step{
		exchange("src", KindDirect),
		bindQ("q", "src", "orders"),
		pubx("src", "orders", msg{body: "job", headers: Table{"app": "kept"}}),
		consume("q", "c", 0),
		wantDelivered("c", "job"),
		refuse,
		wantDelivered("dead", "job"),
		wantMsg("job", wantRoute("dlx", "orders")),
		wantHeader("job", "app", "kept"),
		wantDeaths("job", death{1, ReasonRejected, "q", "src", []string{"orders"}, ""}),
		wantDeathSummary("job", [3]string{ReasonRejected, "q", "src"}, [3]string{ReasonRejected, "q", "src"}),
		wantDelivered("c"),
		wantCounts("q", 0, 0, 1),
	}
}

// retryCycle: q (the work queue) rejects to retryX, whose queue "retry"
// dead-letters back to q through the default exchange after 50 ms. Each
// round trip raises both x-death counts instead of adding entries.
func retryCycle(rounds int) []step {
	steps := []step{
		exchange("in", KindDirect),
		exchange("retryX", KindDirect),
		declare("retry", Table{"x-message-ttl": int32(50), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q"}),
		bindQ("q", "in", "job"),
		bindQ("retry", "retryX", "later"),
		pubx("in", "job", msg{body: "task"}),
		consume("q", "c", 0),
		wantDelivered("c", "task"),
		wantHeader("task", "x-death", nil),
	}
	for round := 1; round <= rounds; round++ {
		n := int64(round)
		steps = append(steps,
			nack("task", false),
			wantCounts("retry", 1, 0, 0),
			advance(49*time.Millisecond),
			wantDelivered("c"),
			advance(2*time.Millisecond),
			wantDelivered("c", "task"),
			wantDeaths("task",
				death{n, ReasonExpired, "retry", "retryX", []string{"later"}, ""},
				death{n, ReasonRejected, "q", "in", []string{"job"}, ""}),
			wantDeathSummary("task", [3]string{ReasonRejected, "q", "in"}, [3]string{ReasonExpired, "retry", "retryX"}),
			wantMsg("task", wantRoute("", "q")),
		)
	}
	return append(steps, ack("task"), advance(time.Second), wantDelivered("c"), wantDrain("retry"), wantCounts("q", 0, 0, 1))
}
