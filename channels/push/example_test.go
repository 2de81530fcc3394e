package push_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/unifiedms/ums/channels/push"
	"github.com/unifiedms/ums/notify"
)

// A server with only Web Push configured checks to.push when a
// notification is submitted, through notify.Rules.Address.
func ExampleSender_ValidateTarget() {
	vapid, _ := ecdh.P256().GenerateKey(rand.Reader) // normally from the config
	s, err := push.New(push.Config{WebPush: &push.WebPushConfig{
		VAPIDPublicKey:  base64.RawURLEncoding.EncodeToString(vapid.PublicKey().Bytes()),
		VAPIDPrivateKey: base64.RawURLEncoding.EncodeToString(vapid.Bytes()),
		Subject:         "mailto:ops@example.com",
	}})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	rules := notify.Rules{
		Configured: map[string]bool{notify.ChannelPush: true},
		Address: map[string]func(string) error{
			notify.ChannelPush: func(to string) error { return s.ValidateTarget([]byte(to)) },
		},
	}
	for _, to := range []string{
		`{"apns_token":"4f1a2b3c4d5e6f708192a3b4c5d6e7f80112233445566778899aabbccddeeff0"}`,
		`{"fcm_token":"abc","apns_token":"4f1a"}`,
		`{"web_push":{"endpoint":"http://push.example.com/x"}}`,
	} {
		n := &notify.Notification{Channel: "push", To: notify.Recipient{Push: []byte(to)}, Content: &notify.Content{Text: "hi"}}
		_, _, err := n.Validate(rules)
		fmt.Println(err)
	}
	fmt.Println(s.Providers())
	// Output:
	// invalid to.push: apns_token: push provider apns is not configured (configured: webpush)
	// invalid to.push: push target: give one of fcm_token, web_push, apns_token, not fcm_token and apns_token
	// invalid to.push: web_push.endpoint: "http://push.example.com/x" is not an https URL with a host
	// [webpush]
}
