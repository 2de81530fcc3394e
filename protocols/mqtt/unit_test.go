package mqtt

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/route"
)

func TestTopicTranslation(t *testing.T) {
	for _, c := range []struct{ topic, key string }{
		{"a/b/c", "a.b.c"},
		{"a/b.c", "a.b/c"},
		{"/a", ".a"},
		{"a//b", "a..b"},
		{"$SYS/x", "$SYS.x"},
		{"plain", "plain"},
	} {
		if got := topicToKey(c.topic); got != c.key {
			t.Errorf("topicToKey(%q) = %q, want %q", c.topic, got, c.key)
		}
		if got := keyToTopic(c.key); got != c.topic {
			t.Errorf("keyToTopic(%q) = %q, want %q", c.key, got, c.topic)
		}
	}
	for _, c := range []struct{ filter, key string }{
		{"a/+/#", "a.*.#"},
		{"#", "#"},
		{"+", "*"},
		{"a.b/+", "a/b.*"},
	} {
		if got := filterToKey(c.filter); got != c.key {
			t.Errorf("filterToKey(%q) = %q, want %q", c.filter, got, c.key)
		}
	}
}

func TestMatchFilter(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+", "a", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"+/+", "/x", true},
		{"a/+/c", "a//c", true},
		{"a/*", "a/x", false},
		{"a/*", "a/*", true},
		{"a/b/#", "a/b", true},
		{"a/b/+", "a/b", false},
	} {
		if got := matchFilter(c.filter, c.topic); got != c.want {
			t.Errorf("matchFilter(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
		// Delivery decides the same way: the core's topic matching of the
		// binding key, then filterAccepts.
		idx := route.NewTopic[string]()
		key := filterToKey(c.filter)
		idx.Add(key, key)
		got := len(idx.Match(topicToKey(c.topic), nil)) > 0 &&
			filterAccepts(c.filter, c.topic, strings.Contains(c.filter, "*"))
		if got != c.want {
			t.Errorf("delivery of %q to a subscription of %q: %v, want %v", c.topic, c.filter, got, c.want)
		}
	}
}

func TestParseShared(t *testing.T) {
	g, f, ok := parseShared("$share/grp/a/+/b")
	if !ok || g != "grp" || f != "a/+/b" {
		t.Fatalf("got %q %q %v", g, f, ok)
	}
	for _, bad := range []string{"a/b", "$share/grp", "$share//a", "$share/grp/"} {
		if _, _, ok := parseShared(bad); ok {
			t.Errorf("%q parsed as shared", bad)
		}
	}
}

func TestStoreKeys(t *testing.T) {
	for _, c := range [][3]string{{"r", "/", "a/b:c"}, {"s", "v:1", "client"}, {"r", "", ""}} {
		k := storeKey(c[0], c[1], c[2])
		kind, vhost, name, ok := parseStoreKey(k)
		if !ok || kind != c[0] || vhost != c[1] || name != c[2] {
			t.Errorf("%q → %q %q %q %v", k, kind, vhost, name, ok)
		}
		for i := range len(k) {
			if k[i] == 0 {
				t.Errorf("key %q holds NUL", k)
			}
		}
	}
}

func TestSessionRecordCodec(t *testing.T) {
	r := &sessionRecord{subs: []subOptions{
		{filter: "a/#", qos: 1, noLocal: true, retainHandling: 2, id: 300},
		{filter: "$share/g/x", qos: 2, retainAsPublished: true},
	}}
	got, err := decodeSessionRecord(r.encode())
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("got %+v %v", got, err)
	}
	b := r.encode()
	for i := range len(b) {
		if _, err := decodeSessionRecord(b[:i]); err == nil {
			t.Fatalf("truncated record (%d of %d bytes) decoded", i, len(b))
		}
	}
}

func TestRetainedCodec(t *testing.T) {
	m := &retainedMsg{topic: "t", qos: 2, payload: []byte("p"), created: time.UnixMilli(1700000000123),
		expires: time.UnixMilli(1700000100000),
		props: packets.Properties{ContentType: "ct", ResponseTopic: "rt", CorrelationData: []byte{0, 1},
			PayloadFormat: 1, PayloadFormatFlag: true, User: []packets.UserProperty{{Key: "k", Val: "v"}}}}
	got, err := decodeRetained("t", m.encode())
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("got %+v %v", got, err)
	}
	b := m.encode()
	for i := range len(b) {
		if _, err := decodeRetained("t", b[:i]); err == nil {
			t.Fatalf("truncated record (%d of %d bytes) decoded", i, len(b))
		}
	}
}

func TestRetainIndex(t *testing.T) {
	store := &MemoryStore{}
	x := newRetainIndex(store)
	now := time.Now()
	for _, topic := range []string{"a", "a/b", "a/b/c", "a/x", "b", "$SYS/up", "/lead"} {
		if err := x.set("/", &retainedMsg{topic: topic, payload: []byte(topic)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.set("other", &retainedMsg{topic: "a", payload: []byte("elsewhere")}); err != nil {
		t.Fatal(err)
	}
	match := func(filter string) string {
		var out []string
		for _, m := range x.match("/", filter, now) {
			out = append(out, m.topic)
		}
		sort.Strings(out)
		return fmt.Sprint(out)
	}
	for filter, want := range map[string]string{
		"#":       "[/lead a a/b a/b/c a/x b]",
		"a/#":     "[a a/b a/b/c a/x]",
		"a/+":     "[a/b a/x]",
		"+":       "[a b]",
		"+/+":     "[/lead a/b a/x]",
		"a/b":     "[a/b]",
		"$SYS/#":  "[$SYS/up]",
		"+/up":    "[]",
		"nothing": "[]",
	} {
		if got := match(filter); got != want {
			t.Errorf("match(%q) = %s, want %s", filter, got, want)
		}
	}
	// Clearing removes the message and the empty branch.
	if err := x.set("/", &retainedMsg{topic: "a/b/c"}); err != nil {
		t.Fatal(err)
	}
	if got := match("a/#"); got != "[a a/b a/x]" {
		t.Fatalf("after clear: %s", got)
	}
	if x.size() != 7 || len(store.All()) != 7 {
		t.Fatalf("size %d, stored %d, want 7", x.size(), len(store.All()))
	}
	// Expired messages are dropped when met.
	if err := x.set("/", &retainedMsg{topic: "old", payload: []byte("x"), expires: now.Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if got := match("old"); got != "[]" {
		t.Fatalf("expired message matched: %s", got)
	}
	if x.size() != 7 {
		t.Fatalf("expired message kept: size %d", x.size())
	}
}

func TestMessageMapping(t *testing.T) {
	now := time.Unix(1700000000, 0)
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Qos: 2, Retain: true}, TopicName: "a/b.c", Payload: []byte("x"),
		Properties: packets.Properties{ContentType: "ct", ResponseTopic: "r/s", CorrelationData: []byte("id"),
			MessageExpiryInterval: 30, User: []packets.UserProperty{{Key: "k", Val: "1"}, {Key: "k", Val: "2"}, {Key: "j", Val: "3"}}}}
	m := toCoreMessage("amq.topic", pk, "me", now)
	p := m.Props
	if m.RoutingKey != "a.b/c" || p.DeliveryMode != core.Persistent || p.ContentType != "ct" || p.ReplyTo != "r.s" ||
		p.CorrelationID != "id" || p.Expiration != "30000" || !p.Timestamp.Equal(now) {
		t.Fatalf("message %+v", m)
	}
	if !reflect.DeepEqual(p.Headers["k"], []any{"1", "2"}) || p.Headers["j"] != "3" {
		t.Fatalf("headers %v", p.Headers)
	}
	if messageQoS(m) != 2 || !publishedRetained(m) || publisherOf(m) != "me" {
		t.Fatalf("qos %d retained %v publisher %q", messageQoS(m), publishedRetained(m), publisherOf(m))
	}
	out := publishProperties(m, now.Add(10*time.Second))
	if out.ContentType != "ct" || out.ResponseTopic != "r/s" || string(out.CorrelationData) != "id" || out.MessageExpiryInterval != 20 {
		t.Fatalf("properties %+v", out)
	}
	var user []string
	for _, u := range out.User {
		user = append(user, u.Key+"="+u.Val)
	}
	sort.Strings(user)
	if fmt.Sprint(user) != "[j=3 k=1 k=2]" {
		t.Fatalf("user properties %v", user)
	}
	// QoS 0, no properties: no headers map at all.
	m0 := toCoreMessage("amq.topic", &packets.Packet{TopicName: "t", Payload: []byte("x")}, "", now)
	if m0.Props.Headers != nil || m0.Props.DeliveryMode != core.Transient || messageQoS(m0) != 0 {
		t.Fatalf("QoS 0 message %+v", m0.Props)
	}
}

// appendPublish produces what mochi's decoder reads back.
func TestAppendPublish(t *testing.T) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2, Retain: true, Dup: true},
		TopicName:   "a/b", PacketID: 7, Payload: make([]byte, 300),
		Properties: packets.Properties{ContentType: "ct", ResponseTopic: "r", CorrelationData: []byte{1, 2},
			MessageExpiryInterval: 9, PayloadFormat: 1, PayloadFormatFlag: true, SubscriptionIdentifier: []int{5, 200000},
			TopicAlias: 3, TopicAliasFlag: true, User: []packets.UserProperty{{Key: "k", Val: "v"}}},
	}
	for _, version := range []byte{4, 5} {
		b, err := appendPublish(nil, &pk, version, 0)
		if err != nil {
			t.Fatal(err)
		}
		var fh packets.FixedHeader
		if err := fh.Decode(b[0]); err != nil {
			t.Fatal(err)
		}
		n, k := 0, 1
		for ; b[k]&0x80 != 0; k++ {
		}
		for i := k; i >= 1; i-- {
			n = n<<7 | int(b[i]&0x7F)
		}
		if n != len(b)-k-1 {
			t.Fatalf("v%d: remaining length %d, packet has %d", version, n, len(b)-k-1)
		}
		got := packets.Packet{FixedHeader: fh, ProtocolVersion: version}
		if err := got.PublishDecode(b[k+1:]); err != nil {
			t.Fatalf("v%d: %v", version, err)
		}
		if got.TopicName != "a/b" || got.PacketID != 7 || len(got.Payload) != 300 || !got.FixedHeader.Retain ||
			!got.FixedHeader.Dup || got.FixedHeader.Qos != 2 {
			t.Fatalf("v%d: %+v", version, got)
		}
		if version == 5 {
			p := got.Properties
			if p.ContentType != "ct" || p.ResponseTopic != "r" || string(p.CorrelationData) != "\x01\x02" ||
				p.MessageExpiryInterval != 9 || p.PayloadFormat != 1 || fmt.Sprint(p.SubscriptionIdentifier) != "[5 200000]" ||
				p.TopicAlias != 3 || len(p.User) != 1 || p.User[0] != (packets.UserProperty{Key: "k", Val: "v"}) {
				t.Fatalf("properties %+v", p)
			}
		}
		if _, err := appendPublish(nil, &pk, version, uint32(len(b)-1)); err == nil {
			t.Fatalf("v%d: packet over the client's maximum size encoded", version)
		}
	}
}
