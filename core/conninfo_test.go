package core

import (
	"testing"

	"github.com/unifiedms/ums/core/auth"
)

// A connection without a name is named after its addresses.
func TestConnInfoName(t *testing.T) {
	v := NewBroker().AddVhost("/")
	c := v.Open("guest", ConnInfo{Peer: "127.0.0.1:5000", Local: "127.0.0.1:1883"})
	defer c.Close()
	if got := c.Info().Name; got != "127.0.0.1:5000 -> 127.0.0.1:1883" {
		t.Fatalf("name %q", got)
	}
	named := v.Open("guest", ConnInfo{Name: "given", Peer: "127.0.0.1:5001", Local: "127.0.0.1:1883"})
	defer named.Close()
	if got := named.Info().Name; got != "given" {
		t.Fatalf("name %q, want the one given", got)
	}
}

// A connection's client id (TopicVars) is listed as client property
// client_id, next to the properties it was opened with, which stay as
// they were.
func TestConnInfoClientID(t *testing.T) {
	v := NewBroker().AddVhost("/")
	props := Table{"product": "test"}
	c := v.Open("guest", ConnInfo{ClientProperties: props, TopicVars: auth.TopicVars{ClientID: "sensor-1"}})
	defer c.Close()
	got := c.Info().ClientProperties
	if got["client_id"] != "sensor-1" || got["product"] != "test" || len(got) != 2 {
		t.Fatalf("client properties %v", got)
	}
	if len(props) != 1 {
		t.Fatalf("the connection's own table changed: %v", props)
	}
	plain := v.Open("guest", ConnInfo{ClientProperties: props})
	defer plain.Close()
	if got := plain.Info().ClientProperties; len(got) != 1 {
		t.Fatalf("without a client id: %v", got)
	}
}
