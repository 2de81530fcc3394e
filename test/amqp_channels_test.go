package test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestManyChannels runs 200 channels on one connection at once. Channel i
// consumes its own queue and publishes to the queue of channel i+1, so
// every delivery crosses channels; each message must arrive exactly once
// and in order.
func TestManyChannels(t *testing.T) {
	t.Parallel()
	const (
		channels = 200
		perChan  = 50
	)
	s := amqpServer(t)
	conn := s.dial(t)

	chans := make([]*amqp.Channel, channels)
	queues := make([]string, channels)
	deliveries := make([]<-chan amqp.Delivery, channels)
	for i := range chans {
		chans[i] = newChannel(t, conn)
		if err := chans[i].Confirm(false); err != nil {
			t.Fatal(err)
		}
		q, err := chans[i].QueueDeclare("", false, false, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		queues[i] = q.Name
		if deliveries[i], err = chans[i].Consume(q.Name, "", false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, 2*channels)
	var wg sync.WaitGroup
	for i := range chans {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- publishRun(ctx, chans[i], queues[(i+1)%channels], i, perChan)
		}()
		go func() {
			defer wg.Done()
			from := (i + channels - 1) % channels
			errs <- consumeRun(ctx, chans[i], deliveries[i], from, perChan)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	// Nothing beyond the expected messages arrives anywhere.
	for i, d := range deliveries {
		select {
		case m := <-d:
			t.Fatalf("channel %d: extra delivery %q", i, m.Body)
		default:
		}
	}
	noRecv(t, deliveries[0])
	for i, q := range queues {
		if msgs, _ := messageCount(t, conn, q); msgs != 0 {
			t.Fatalf("queue %d still holds %d messages", i, msgs)
		}
	}
}

// publishRun publishes n confirmed messages "from/seq" to the queue.
func publishRun(ctx context.Context, ch *amqp.Channel, queue string, from, n int) error {
	confirms := make([]*amqp.DeferredConfirmation, 0, n)
	for seq := range n {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false,
			amqp.Publishing{Body: fmt.Appendf(nil, "%d/%d", from, seq)})
		if err != nil {
			return fmt.Errorf("channel %d: publish %d: %w", from, seq, err)
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("channel %d: confirm %d: %w", from, dc.DeliveryTag, err)
		}
		if !ok {
			return fmt.Errorf("channel %d: publish %d nacked", from, dc.DeliveryTag)
		}
	}
	return nil
}

// consumeRun receives n messages from channel from in order and acks them.
func consumeRun(ctx context.Context, ch *amqp.Channel, d <-chan amqp.Delivery, from, n int) error {
	for seq := range n {
		select {
		case m, ok := <-d:
			if !ok {
				return fmt.Errorf("deliveries from channel %d: consumer closed after %d", from, seq)
			}
			if want := fmt.Sprintf("%d/%d", from, seq); string(m.Body) != want {
				return fmt.Errorf("deliveries from channel %d: got %q, want %q", from, m.Body, want)
			}
			if m.Redelivered {
				return fmt.Errorf("deliveries from channel %d: %q redelivered", from, m.Body)
			}
			if err := m.Ack(false); err != nil {
				return fmt.Errorf("deliveries from channel %d: ack: %w", from, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("deliveries from channel %d: %d of %d before the deadline", from, seq, n)
		}
	}
	return nil
}
