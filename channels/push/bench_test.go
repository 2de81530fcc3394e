package push_test

import (
	"context"
	"testing"
)

// The benchmarks send through each provider to its local test server, so
// they measure UMS's side (request building, encryption, signing, one
// HTTP round trip on loopback), not the providers. The test servers run in
// the same process and their checks (token and VAPID signatures, Web Push
// decryption) are counted too.

func BenchmarkFCMSend(b *testing.B) {
	e := newFCMEnv(b)
	s := e.sender(b, nil)
	m := fcmMessage(fcmToken)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Send(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
}

// Web Push pays for an ECDH key pair, the encryption and a VAPID
// signature on every message.
func BenchmarkWebPushSend(b *testing.B) {
	pub, priv := vapidKeys(b)
	br := newBrowser(b)
	p := newPushService(b, pub, br)
	s := webPushSender(b, p, pub, priv, nil)
	m := webPushMessage(br.target(p.srv.URL + "/push/ok"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Send(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAPNsSend(b *testing.B) {
	k, pemKey := apnsKey(b)
	a := newAPNsServer(b, &k.PublicKey)
	s := apnsSender(b, a, pemKey, nil)
	m := apnsMessage(apnsHex)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Send(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
}
