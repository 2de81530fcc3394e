package test

import (
	"testing"

	"github.com/go-stomp/stomp/v3"
)

// BenchmarkStompQueue: go-stomp SENDs to a queue that a client-individual
// subscription with prefetch 100 drains, acknowledging each message.
func BenchmarkStompQueue(b *testing.B) {
	br := startStomp(b)
	pub := stompDial(b, br.STOMPAddr)
	subc := stompDial(b, br.STOMPAddr)
	s := stompSubscribe(b, subc, "/queue/bench", stomp.AckClientIndividual, stomp.SubscribeOpt.Header("prefetch-count", "100"))
	acks := make(chan *stomp.Message, 10000)
	go func() {
		for m := range acks {
			_ = subc.Ack(m)
		}
	}()
	defer close(acks)
	body := make([]byte, 16)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for range b.N {
			if err := pub.Send("/queue/bench", "application/octet-stream", body); err != nil {
				return
			}
		}
	}()
	for range b.N {
		m := stompRecv(b, s)
		acks <- m
	}
}
