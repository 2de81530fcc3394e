package core

import (
	"fmt"
	"testing"
)

// prio is a message body with its priority.
type prio struct {
	body string
	p    uint8
}

func prioMsgs(ps ...prio) []msg {
	ms := make([]msg, len(ps))
	for i, p := range ps {
		ms[i] = msg{body: p.body, prio: p.p}
	}
	return ms
}

// Priority queues (x-max-priority) deliver the highest priority first and
// equal priorities in publish order; a priority above the maximum counts
// as the maximum; without the argument priorities are ignored; a requeued
// message goes back to its place in its level.
func TestTablePriority(t *testing.T) {
	mixed := prioMsgs(prio{"p3a", 3}, prio{"p7a", 7}, prio{"p1a", 1}, prio{"p9a", 9}, prio{"p7b", 7}, prio{"p5a", 5}, prio{"p3b", 3},
		prio{"p0a", 0}, prio{"p9b", 9}, prio{"p2a", 2}, prio{"p8a", 8}, prio{"p4a", 4}, prio{"p6a", 6}, prio{"p1b", 1}, prio{"p7c", 7})
	mixedOrder := []string{"p9a", "p9b", "p8a", "p7a", "p7b", "p7c", "p6a", "p5a", "p4a", "p3a", "p3b", "p2a", "p1a", "p1b", "p0a"}

	rows := []row{
		{name: "max 10, get", args: Table{"x-max-priority": int32(10)}, steps: []step{
			pubm("q", mixed...),
			wantDrain("q", mixedOrder...),
		}},
		{name: "max 10, consumer with prefetch 1", args: Table{"x-max-priority": int32(10)}, steps: consumeInOrder(mixed, mixedOrder)},
		{name: "above the maximum", args: Table{"x-max-priority": int32(5)}, steps: []step{
			pubm("q", prioMsgs(prio{"p1", 1}, prio{"p5", 5}, prio{"p200", 200}, prio{"p3", 3}, prio{"p6", 6}, prio{"p5b", 5})...),
			wantDrain("q", "p5", "p200", "p6", "p5b", "p3", "p1"),
			wantMsg("p200", func(m *Message) error {
				if m.Props.Priority != 200 {
					return fmt.Errorf("delivered with priority %d, want 200 unchanged", m.Props.Priority)
				}
				return nil
			}),
		}},
		{name: "no x-max-priority", steps: []step{
			pubm("q", prioMsgs(prio{"a", 1}, prio{"b", 9}, prio{"c", 0}, prio{"d", 5})...),
			wantDrain("q", "a", "b", "c", "d"),
		}},
		{name: "requeue after get", args: Table{"x-max-priority": int32(10)}, steps: []step{
			pubm("q", prioMsgs(prio{"low", 1}, prio{"high1", 8}, prio{"high2", 8})...),
			get("q", "high1"),
			nack("high1", true),
			wantDrain("q", "high1!", "high2", "low"),
		}},
		{name: "requeue by a consumer", args: Table{"x-max-priority": int32(10)}, steps: []step{
			pubm("q", prioMsgs(prio{"low", 1}, prio{"mid", 5}, prio{"high", 9})...),
			consume("q", "c", 2),
			wantDelivered("c", "high", "mid"),
			pubm("q", prioMsgs(prio{"mid2", 5})...),
			nack("mid", true),
			wantDelivered("c", "mid!"), // back ahead of mid2, published later
			nack("high", true),
			wantDelivered("c", "high!"),
			ack("high"),
			wantDelivered("c", "mid2"),
			ack("mid"),
			wantDelivered("c", "low"),
		}},
		{name: "higher priority overtakes a backlog", args: Table{"x-max-priority": int32(10)}, steps: []step{
			pub("q", "b1", "b2", "b3"),
			pubm("q", prioMsgs(prio{"urgent", 9})...),
			pub("q", "b4"),
			wantDrain("q", "urgent", "b1", "b2", "b3", "b4"),
		}},
	}
	runRows(t, rows)
}

// consumeInOrder publishes ms, then a consumer with prefetch 1 takes them
// one by one, acknowledging each, and must get want in that order.
func consumeInOrder(ms []msg, want []string) []step {
	steps := []step{pubm("q", ms...), consume("q", "c", 1)}
	for _, b := range want {
		steps = append(steps, wantDelivered("c", b), ack(b))
	}
	return append(steps, wantDelivered("c"))
}

// x-max-length and x-max-length-bytes count ready messages: drop-head
// drops (and dead-letters, reason maxlen) the oldest; reject-publish
// refuses new messages (a confirming publisher gets a nack);
// reject-publish-dlx also dead-letters the refused ones.
func TestTableMaxLength(t *testing.T) {
	rows := []row{
		{name: "drop-head", dlx: true, args: Table{"x-max-length": int32(3), "x-dead-letter-exchange": "dlx"}, steps: []step{
			pubResult("", "q", []bool{true, true, true, true, true}, msgs("1", "2", "3", "4", "5")...),
			wantCounts("q", 3, 0, 0),
			wantDelivered("dead", "1", "2"),
			wantDeaths("1", death{1, ReasonMaxLen, "q", "", []string{"q"}, ""}),
			wantDeathSummary("2", [3]string{ReasonMaxLen, "q", ""}, [3]string{ReasonMaxLen, "q", ""}),
			wantDrain("q", "3", "4", "5"),
		}},
		{name: "drop-head without dead-letter exchange", args: Table{"x-max-length": int32(2), "x-overflow": "drop-head"}, steps: []step{
			pub("q", "1", "2", "3"),
			wantDrain("q", "2", "3"),
		}},
		{name: "drop-head in a priority queue drops the highest priority", dlx: true,
			args: Table{"x-max-length": int32(2), "x-max-priority": int32(5), "x-dead-letter-exchange": "dlx"}, steps: []step{
				pubm("q", prioMsgs(prio{"low", 1}, prio{"high", 5}, prio{"mid", 3})...),
				wantDelivered("dead", "high"),
				wantDrain("q", "mid", "low"),
			}},
		{name: "max length 0", args: Table{"x-max-length": int32(0)}, steps: []step{
			consume("q", "c", 1),
			pub("q", "taken", "dropped"),
			wantDelivered("c", "taken"),
			wantCounts("q", 0, 1, 1),
		}},
		{name: "bytes, drop-head", dlx: true, args: Table{"x-max-length-bytes": int32(10), "x-dead-letter-exchange": "dlx"}, steps: []step{
			pub("q", "aaaa", "bbbb", "cccc", "dd"),
			wantDelivered("dead", "aaaa"),
			wantDeaths("aaaa", death{1, ReasonMaxLen, "q", "", []string{"q"}, ""}),
			wantDrain("q", "bbbb", "cccc", "dd"),
			pub("q", "eeeeeeeeee"), // exactly at the limit
			wantDrain("q", "eeeeeeeeee"),
			pub("q", "fffffffffff"), // over the limit on its own
			wantDrain("q"),
			wantDelivered("dead", "fffffffffff"),
		}},
		{name: "bytes, reject-publish", args: Table{"x-max-length-bytes": int32(6), "x-overflow": "reject-publish"}, steps: []step{
			pubResult("", "q", []bool{true, true, false, true}, msgs("aaa", "bbb", "c", "")...),
			wantDrain("q", "aaa", "bbb", ""),
		}},
		{name: "reject-publish", dlx: true, args: Table{"x-max-length": int32(2), "x-overflow": "reject-publish", "x-dead-letter-exchange": "dlx"}, steps: []step{
			pubResult("", "q", []bool{true, true, false, false}, msgs("1", "2", "3", "4")...),
			wantCounts("q", 2, 0, 0),
			wantDelivered("dead"),
			get("q", "1"),
			pubResult("", "q", []bool{true, false}, msgs("5", "6")...),
			wantDrain("q", "2", "5"),
			wantDelivered("dead"),
		}},
		{name: "reject-publish-dlx", dlx: true, args: Table{"x-max-length": int32(2), "x-overflow": "reject-publish-dlx", "x-dead-letter-exchange": "dlx"}, steps: []step{
			pubResult("", "q", []bool{true, true, false, false}, msgs("1", "2", "3", "4")...),
			wantCounts("q", 2, 0, 0),
			wantDelivered("dead", "3", "4"),
			wantDeaths("3", death{1, ReasonMaxLen, "q", "", []string{"q"}, ""}),
			get("q", "1"),
			pubResult("", "q", []bool{true, false}, msgs("5", "6")...),
			wantDelivered("dead", "6"),
			wantDrain("q", "2", "5"),
		}},
		{name: "reject-publish at 0", args: Table{"x-max-length": int32(0), "x-overflow": "reject-publish"}, steps: []step{
			pubResult("", "q", []bool{false}, msgs("full")...),
			wantDrain("q"),
		}},
		{name: "unacknowledged messages do not count", args: Table{"x-max-length": int32(2)}, steps: []step{
			pub("q", "1", "2"),
			consume("q", "holder", 0),
			wantDelivered("holder", "1", "2"),
			cancel("holder"),
			pub("q", "3", "4"),
			wantCounts("q", 2, 2, 0),
			wantDrain("q", "3", "4"),
		}},
		{name: "requeued messages count again", dlx: true, args: Table{"x-max-length": int32(2), "x-dead-letter-exchange": "dlx"}, steps: []step{
			pub("q", "1"),
			get("q", "1"),
			pub("q", "2", "3"),
			nack("1", true),
			wantDelivered("dead", "1"),
			wantDrain("q", "2", "3"),
		}},
	}
	runRows(t, rows)
}

func msgs(bodies ...string) []msg {
	ms := make([]msg, len(bodies))
	for i, b := range bodies {
		ms[i] = msg{body: b}
	}
	return ms
}

// Single active consumer: only the first consumer gets messages, even
// when it has no room; when it is cancelled the next one takes over,
// and its unacknowledged messages go to the new active one once requeued.
func TestTableSingleActiveConsumer(t *testing.T) {
	sac := Table{"x-single-active-consumer": true}
	rows := []row{
		{name: "first gets all, next takes over", args: sac, steps: []step{
			consume("q", "first", 1),
			consume("q", "second", 1),
			pub("q", "1", "2", "3", "4"),
			wantDelivered("first", "1"),
			wantDelivered("second"),
			ack("1"),
			wantDelivered("first", "2"),
			wantDelivered("second"),
			ack("2"),
			wantDelivered("first", "3"),
			cancel("first"),
			wantDelivered("second", "4"),
			ack("4"),
			closeSession("first"),
			wantDelivered("second", "3!"),
			wantDelivered("first"),
		}},
		{name: "unlimited active consumer", args: sac, steps: []step{
			consume("q", "first", 0),
			consume("q", "second", 0),
			consume("q", "third", 0),
			pub("q", "1", "2", "3"),
			wantDelivered("first", "1", "2", "3"),
			wantDelivered("second"),
			wantDelivered("third"),
			cancel("first"),
			pub("q", "4"),
			wantDelivered("second", "4"),
			wantDelivered("third"),
			closeSession("second"),
			wantDelivered("third", "4!"),
		}},
		{name: "takeover by session close", args: sac, steps: []step{
			pub("q", "1", "2"),
			consume("q", "first", 1),
			consume("q", "second", 1),
			wantDelivered("first", "1"),
			closeSession("first"),
			wantDelivered("second", "1!"),
			ack("1"),
			wantDelivered("second", "2"),
		}},
		{name: "without the argument consumers share", steps: []step{
			consume("q", "first", 1),
			consume("q", "second", 1),
			pub("q", "1", "2"),
			wantDelivered("first", "1"),
			wantDelivered("second", "2"),
		}},
	}
	runRows(t, rows)
}

// x-delivery-limit: a message requeued more often than the limit is
// dead-lettered with reason delivery_limit; redeliveries carry
// x-delivery-count (UMS applies it to classic queues too).
func TestTableDeliveryLimit(t *testing.T) {
	rows := []row{
		{name: "limit 2", dlx: true, args: Table{"x-delivery-limit": int32(2), "x-dead-letter-exchange": "dlx"}, steps: []step{
			pub("q", "poison", "fine"),
			consume("q", "c", 1),
			wantDelivered("c", "poison"),
			wantHeader("poison", "x-delivery-count", nil),
			nack("poison", true),
			wantDelivered("c", "poison!"),
			wantHeader("poison", "x-delivery-count", int64(1)),
			nack("poison", true),
			wantDelivered("c", "poison!"),
			wantHeader("poison", "x-delivery-count", int64(2)),
			wantDelivered("dead"),
			nack("poison", true), // the third requeue is over the limit
			wantDelivered("c", "fine"),
			wantHeader("fine", "x-delivery-count", nil),
			ack("fine"),
			wantDelivered("dead", "poison"),
			wantDeaths("poison", death{1, ReasonDeliveryLimit, "q", "", []string{"q"}, ""}),
			wantDrain("q"),
		}},
		{name: "limit 0", dlx: true, args: Table{"x-delivery-limit": int32(0), "x-dead-letter-exchange": "dlx"}, steps: []step{
			pub("q", "m"),
			consume("q", "c", 0),
			wantDelivered("c", "m"),
			nack("m", true),
			wantDelivered("dead", "m"),
			wantDelivered("c"),
			wantDeaths("m", death{1, ReasonDeliveryLimit, "q", "", []string{"q"}, ""}),
		}},
		{name: "session close counts as a return", dlx: true, args: Table{"x-delivery-limit": int32(1), "x-dead-letter-exchange": "dlx"}, steps: []step{
			pub("q", "m"),
			consume("q", "c1", 0),
			wantDelivered("c1", "m"),
			closeSession("c1"),
			consume("q", "c2", 0),
			wantDelivered("c2", "m!"),
			wantHeader("m", "x-delivery-count", int64(1)),
			closeSession("c2"),
			wantDelivered("dead", "m"),
			wantDrain("q"),
		}},
		{name: "basic.get counts", dlx: true, args: Table{"x-delivery-limit": int32(1), "x-dead-letter-exchange": "dlx"}, steps: []step{
			pub("q", "m"),
			get("q", "m"),
			nack("m", true),
			get("q", "m!"),
			wantHeader("m", "x-delivery-count", int64(1)),
			nack("m", true),
			wantDelivered("dead", "m"),
			get("q", ""),
		}},
		{name: "rejected without requeue is rejected, not over the limit", dlx: true, args: Table{"x-delivery-limit": int32(5), "x-dead-letter-exchange": "dlx"}, steps: []step{
			pub("q", "m"),
			get("q", "m"),
			nack("m", false),
			wantDelivered("dead", "m"),
			wantDeaths("m", death{1, ReasonRejected, "q", "", []string{"q"}, ""}),
		}},
		{name: "without dead-letter exchange dropped", args: Table{"x-delivery-limit": int32(1)}, steps: []step{
			pub("q", "m", "n"),
			get("q", "m"),
			nack("m", true),
			get("q", "m!"),
			nack("m", true),
			wantDrain("q", "n"),
		}},
		{name: "without the argument no header", steps: []step{
			pub("q", "m"),
			get("q", "m"),
			nack("m", true),
			get("q", "m!"),
			wantHeader("m", "x-delivery-count", nil),
		}},
	}
	runRows(t, rows)
}
