package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// httpSubmitter posts notifications to the notification API.
type httpSubmitter struct {
	client     *http.Client
	one, batch string // endpoint URLs
	user, pass string
	vhost      string
	size       int
	dedup      bool
}

func newHTTPSubmitter(o notifyOptions) (*httpSubmitter, error) {
	base, user, pass, err := splitUserinfo(o.httpURL)
	if err != nil {
		return nil, fmt.Errorf("-http-url: %w", err)
	}
	base = strings.TrimSuffix(base, "/")
	tr := &http.Transport{MaxIdleConnsPerHost: o.clients, MaxConnsPerHost: o.clients}
	return &httpSubmitter{
		client: &http.Client{Transport: tr, Timeout: time.Minute},
		one:    base + "/api/v1/notifications", batch: base + "/api/v1/notifications/batch",
		user: user, pass: pass, vhost: o.vhost, size: o.batch, dedup: o.dedup,
	}, nil
}

// post sends body and returns the status and the answer.
func (h *httpSubmitter) post(url string, body []byte, key string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if h.user != "" {
		req.SetBasicAuth(h.user, h.pass)
	}
	if h.vhost != "" {
		req.Header.Set("X-UMS-Vhost", h.vhost)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, answer, err
}

// single submits one notification per request until src runs out.
func (h *httpSubmitter) single(src *source, b *builder, sub *submitted) error {
	var buf []byte
	for {
		seq, n := src.take(1)
		if n == 0 {
			return nil
		}
		buf = b.notification(buf[:0], seq, time.Now())
		key := ""
		if h.dedup {
			key = b.key(seq)
		}
		code, answer, err := h.post(h.one, buf, key)
		switch {
		case err != nil:
			sub.refuse(1, err.Error())
		case code == http.StatusAccepted:
			sub.accepted.Add(1)
		case code == http.StatusOK:
			sub.deduplicated.Add(1)
		default:
			sub.refuse(1, fmt.Sprintf("%d %s", code, bytes.TrimSpace(answer)))
		}
	}
}

// batchOf submits batches of h.size notifications until src runs out.
func (h *httpSubmitter) batchOf(src *source, b *builder, sub *submitted) error {
	var buf []byte
	for {
		seq, n := src.take(int64(h.size))
		if n == 0 {
			return nil
		}
		now := time.Now()
		buf = append(buf[:0], `{"notifications":[`...)
		for i := int64(0); i < n; i++ {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = b.notification(buf, seq+i, now)
		}
		buf = append(buf, "]}"...)
		code, answer, err := h.post(h.batch, buf, "")
		if err != nil {
			sub.refuse(n, err.Error())
			continue
		}
		var out struct {
			Results []struct {
				Code  int    `json:"code"`
				Error string `json:"error"`
			} `json:"results"`
		}
		if code != http.StatusOK || json.Unmarshal(answer, &out) != nil || int64(len(out.Results)) != n {
			sub.refuse(n, fmt.Sprintf("%d %s", code, bytes.TrimSpace(answer)))
			continue
		}
		for _, r := range out.Results {
			switch r.Code {
			case http.StatusAccepted:
				sub.accepted.Add(1)
			case http.StatusOK:
				sub.deduplicated.Add(1)
			default:
				sub.refuse(1, fmt.Sprintf("%d %s", r.Code, r.Error))
			}
		}
	}
}

// amqpSubmitters publish to exchange ums.notify, one connection per
// publishing goroutine, each with its own confirm window.
type amqpSubmitters struct {
	conns  chan *amqp.Connection
	window int
	all    []*amqp.Connection
}

func dialAMQPSubmitters(o notifyOptions) (*amqpSubmitters, error) {
	a := &amqpSubmitters{conns: make(chan *amqp.Connection, o.clients), window: o.confirm}
	for i := 0; i < o.clients; i++ {
		c, err := amqp.Dial(o.amqpURL)
		if err != nil {
			a.close()
			return nil, err
		}
		a.all = append(a.all, c)
		a.conns <- c
	}
	return a, nil
}

func (a *amqpSubmitters) close() {
	for _, c := range a.all {
		c.Close()
	}
}

// publish publishes persistent notifications with routing key webhook and
// counts the broker's confirms, keeping at most a.window unconfirmed.
func (a *amqpSubmitters) publish(src *source, b *builder, sub *submitted) error {
	conn := <-a.conns
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, a.window))
	outstanding := 0
	await := func() error {
		select {
		case c, ok := <-confirms:
			if !ok {
				return fmt.Errorf("AMQP channel closed with %d notifications unconfirmed", outstanding)
			}
			if c.Ack {
				sub.accepted.Add(1)
			} else {
				sub.refuse(1, "nack")
			}
			outstanding--
			return nil
		case <-time.After(time.Minute):
			return fmt.Errorf("no confirm for a minute (%d outstanding)", outstanding)
		}
	}
	var buf []byte
	for {
		seq, n := src.take(1)
		if n == 0 {
			break
		}
		buf = b.notification(buf[:0], seq, time.Now())
		err := ch.PublishWithContext(context.Background(), "ums.notify", "webhook", false, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: buf})
		if err != nil {
			return err
		}
		outstanding++
		for outstanding >= a.window {
			if err := await(); err != nil {
				return err
			}
		}
	}
	for outstanding > 0 {
		if err := await(); err != nil {
			return err
		}
	}
	return nil
}
