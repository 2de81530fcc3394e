package test

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestSmokePublishConsume(t *testing.T) {
	s := startServer(t)
	_, ch := s.channel(t)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("", q.Name, false, false, amqp.Publishing{Body: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	m := recv(t, d)
	if string(m.Body) != "hello" {
		t.Fatalf("got %q", m.Body)
	}
	if err := m.Ack(false); err != nil {
		t.Fatal(err)
	}
}
