package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func topicStore(t testing.TB, users ...string) *Store {
	t.Helper()
	s := NewStore()
	for _, u := range users {
		if err := s.PutUser(u, "p", nil); err != nil {
			t.Fatal(err)
		}
		if err := s.SetPermission(u, "/", Permission{".*", ".*", ".*"}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func setTopic(t testing.TB, s *Store, user, vhost string, p TopicPermission) {
	t.Helper()
	if err := s.SetTopicPermission(user, vhost, p); err != nil {
		t.Fatal(err)
	}
}

func TestTopicNoPermissionAllows(t *testing.T) {
	s := topicStore(t, "u", "v")
	for _, k := range []Access{Write, Read} {
		if !s.CheckTopic("u", "/", k, "amq.topic", "any.key", TopicVars{}) {
			t.Fatalf("%s refused without topic permissions", k)
		}
	}
	// Another user's, another vhost's and another exchange's permissions
	// change nothing.
	setTopic(t, s, "v", "/", TopicPermission{"amq.topic", "^$", "^$"})
	setTopic(t, s, "u", "other", TopicPermission{"amq.topic", "^$", "^$"})
	setTopic(t, s, "u", "/", TopicPermission{"x.topic", "^$", "^$"})
	if !s.CheckTopic("u", "/", Write, "amq.topic", "any.key", TopicVars{}) {
		t.Fatal("permissions of another user, vhost or exchange applied")
	}
	if s.CheckTopic("v", "/", Write, "amq.topic", "any.key", TopicVars{}) {
		t.Fatal("v's permission not applied")
	}
	// An unknown user has no topic permissions either; vhost access is
	// Check's business.
	if !s.CheckTopic("nobody", "/", Read, "amq.topic", "k", TopicVars{}) {
		t.Fatal("unknown user refused")
	}
	if s.CheckTopic("u", "/", Configure, "amq.topic", "k", TopicVars{}) || s.CheckTopic("u", "/", Access(9), "amq.topic", "k", TopicVars{}) {
		t.Fatal("invalid access kind allowed")
	}
}

func TestTopicMatching(t *testing.T) {
	s := topicStore(t, "u")
	setTopic(t, s, "u", "/", TopicPermission{Exchange: "amq.topic", Write: `^sensors\.`, Read: `alerts`})
	setTopic(t, s, "u", "/", TopicPermission{Exchange: "none", Write: "", Read: "^$"})
	setTopic(t, s, "u", "/", TopicPermission{Exchange: "all", Write: ".*", Read: "^.*$"})
	for _, c := range []struct {
		x, key string
		kind   Access
		want   bool
	}{
		{"amq.topic", "sensors.temp", Write, true},
		{"amq.topic", "sensors", Write, false},
		{"amq.topic", "my.sensors.temp", Write, false},
		{"amq.topic", "sensorsXtemp", Write, false},
		{"amq.topic", "sensors.temp", Read, false},
		{"amq.topic", "x.alerts.#", Read, true}, // unanchored
		{"amq.topic", "alerts.#", Write, false},
		{"none", "a", Write, false},
		{"none", "a", Read, false},
		{"none", "", Write, true}, // "^$" matches the empty key
		{"none", "", Read, true},
		{"all", "a.b", Write, true},
		{"all", "", Read, true},
	} {
		if got := s.CheckTopic("u", "/", c.kind, c.x, c.key, TopicVars{}); got != c.want {
			t.Errorf("CheckTopic(%s, %q, %q) = %v, want %v", c.kind, c.x, c.key, got, c.want)
		}
	}
}

func TestTopicVariables(t *testing.T) {
	s := topicStore(t, "a.b", "alice", "c{vhost}")
	for _, u := range []string{"a.b", "alice", "c{vhost}"} {
		setTopic(t, s, u, "/", TopicPermission{Exchange: "amq.topic", Write: `^{username}\.`, Read: `^{vhost}/{client_id}$`})
	}
	for _, c := range []struct {
		user, key, client string
		kind              Access
		want              bool
	}{
		{"alice", "alice.x", "", Write, true},
		{"alice", "bob.x", "", Write, false},
		{"a.b", "a.b.x", "", Write, true},
		{"a.b", "aXb.x", "", Write, false}, // the "." of the name is quoted
		{"a.b", "a.b", "", Write, false},
		// A value that looks like a variable is not expanded again.
		{"c{vhost}", "c{vhost}.x", "", Write, true},
		{"c{vhost}", "c/.x", "", Write, false},
		{"alice", "//c1", "c1", Read, true},
		{"alice", "//c2", "c1", Read, false},
		{"alice", "//c.1", "c.1", Read, true},
		{"alice", "//cX1", "c.1", Read, false},
		// Without a client id, "{client_id}" stays as written, as in
		// RabbitMQ for AMQP 0-9-1; Go reads "{client_id}" as a literal.
		{"alice", "//", "", Read, false},
		{"alice", "//{client_id}", "", Read, true},
	} {
		if got := s.CheckTopic(c.user, "/", c.kind, "amq.topic", c.key, TopicVars{ClientID: c.client}); got != c.want {
			t.Errorf("CheckTopic(%q, %s, %q, client %q) = %v, want %v", c.user, c.kind, c.key, c.client, got, c.want)
		}
	}
	// The cache stays bounded however many client ids there are.
	for i := range 3 * maxTopicCache {
		id := fmt.Sprintf("c%d", i)
		if !s.CheckTopic("alice", "/", Read, "amq.topic", "//"+id, TopicVars{ClientID: id}) {
			t.Fatalf("client %s refused", id)
		}
	}
	tp := s.lookup("alice").topics[topicKey{"/", "amq.topic"}]
	tp.matcher[1].mu.Lock()
	n := len(tp.matcher[1].cache)
	tp.matcher[1].mu.Unlock()
	if n > maxTopicCache {
		t.Fatalf("cache holds %d expansions, max %d", n, maxTopicCache)
	}
}

func TestExpandTopic(t *testing.T) {
	for _, c := range []struct{ expr, want string }{
		{"{username}", `a\.b`},
		{"^{vhost}/{username}/{vhost}$", `^v\*/a\.b/v\*$`},
		{"{client_id}", `c\+`},
		{"{other}{", "{other}{"},
		{"{{username}}", `{a\.b}`},
		{"no vars", "no vars"},
	} {
		if got := expandTopic(c.expr, "a.b", "v*", "c+"); got != c.want {
			t.Errorf("expandTopic(%q) = %q, want %q", c.expr, got, c.want)
		}
	}
	if got := expandTopic("{client_id}", "u", "v", ""); got != "{client_id}" {
		t.Errorf("empty client id expanded to %q", got)
	}
}

func TestSetTopicPermissionErrors(t *testing.T) {
	s := topicStore(t, "u")
	err := s.SetTopicPermission("u", "/", TopicPermission{"amq.topic", "a(b", ".*"})
	if !errors.Is(err, ErrInvalidPermission) || !strings.Contains(err.Error(), "write") || !strings.Contains(err.Error(), `"a(b"`) {
		t.Fatalf("bad write regex: %v", err)
	}
	err = s.SetTopicPermission("u", "/", TopicPermission{"amq.topic", ".*", `^{username}(\.`})
	if !errors.Is(err, ErrInvalidPermission) || !strings.Contains(err.Error(), "read") || !strings.Contains(err.Error(), `{username}`) {
		t.Fatalf("bad read regex with a variable: %v", err)
	}
	if err := s.SetTopicPermission("u", "/", TopicPermission{"", ".*", ".*"}); !errors.Is(err, ErrInvalidPermission) {
		t.Fatalf("empty exchange: %v", err)
	}
	if len(s.TopicPermissions("u", "/")) != 0 {
		t.Fatal("a failed SetTopicPermission left a permission behind")
	}
	if err := s.SetTopicPermission("nobody", "/", TopicPermission{"amq.topic", ".*", ".*"}); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("unknown user: %v", err)
	}
	if err := s.ClearTopicPermission("nobody", "/", ""); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("clear for an unknown user: %v", err)
	}
	if s.TopicPermissions("nobody", "/") != nil {
		t.Fatal("topic permissions for an unknown user")
	}
}

func TestTopicPermissionsListAndClear(t *testing.T) {
	s := topicStore(t, "u")
	setTopic(t, s, "u", "/", TopicPermission{"x2", "^a", "^b"})
	setTopic(t, s, "u", "/", TopicPermission{"x1", "^c", "^d"})
	setTopic(t, s, "u", "/", TopicPermission{"x3", "^e", ""})
	setTopic(t, s, "u", "v", TopicPermission{"x1", "^f", "^g"})
	setTopic(t, s, "u", "/", TopicPermission{"x2", "^h", "^i"}) // replaces
	want := []TopicPermission{{"x1", "^c", "^d"}, {"x2", "^h", "^i"}, {"x3", "^e", ""}}
	if got := s.TopicPermissions("u", "/"); !slices.Equal(got, want) {
		t.Fatalf("TopicPermissions = %v, want %v", got, want)
	}
	if s.topicCount.Load() != 4 {
		t.Fatalf("topicCount = %d, want 4", s.topicCount.Load())
	}
	// Updating the user or its vhost permissions keeps topic permissions.
	s.PutUser("u", "q", []string{"management"})
	s.SetLoopbackOnly("u", true)
	s.SetPermission("u", "/", Permission{"", "", ""})
	s.ClearPermission("u", "v")
	if got := s.TopicPermissions("u", "/"); !slices.Equal(got, want) {
		t.Fatalf("after user updates: %v", got)
	}

	if err := s.ClearTopicPermission("u", "/", "x2"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearTopicPermission("u", "/", "x2"); err != nil {
		t.Fatalf("clearing twice: %v", err)
	}
	if !s.CheckTopic("u", "/", Write, "x2", "zzz", TopicVars{}) || s.CheckTopic("u", "/", Write, "x1", "zzz", TopicVars{}) {
		t.Fatal("ClearTopicPermission cleared the wrong exchange")
	}
	if err := s.ClearTopicPermission("u", "/", ""); err != nil {
		t.Fatal(err)
	}
	if got := s.TopicPermissions("u", "/"); len(got) != 0 {
		t.Fatalf("after clearing the vhost: %v", got)
	}
	if got := s.TopicPermissions("u", "v"); len(got) != 1 {
		t.Fatalf("clearing / cleared v: %v", got)
	}
	if s.topicCount.Load() != 1 {
		t.Fatalf("topicCount = %d, want 1", s.topicCount.Load())
	}
	if err := s.DeleteUser("u"); err != nil {
		t.Fatal(err)
	}
	if s.topicCount.Load() != 0 {
		t.Fatalf("topicCount after DeleteUser = %d", s.topicCount.Load())
	}
	s.PutUser("u", "p", nil)
	if len(s.TopicPermissions("u", "v")) != 0 || !s.CheckTopic("u", "v", Write, "x1", "zzz", TopicVars{}) {
		t.Fatal("a re-created user inherited topic permissions")
	}
}

func TestCheckTopicAllocs(t *testing.T) {
	s := topicStore(t, "u", "restricted")
	check := func(name, user, x, key string, want bool) {
		t.Helper()
		s.CheckTopic(user, "/", Write, x, key, TopicVars{}) // warm the regexp's machine pool
		n := testing.AllocsPerRun(100, func() {
			if s.CheckTopic(user, "/", Write, x, key, TopicVars{}) != want {
				panic("wrong result")
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocations, want 0", name, n)
		}
	}
	check("no topic permissions anywhere", "u", "amq.topic", "a.b", true)
	setTopic(t, s, "restricted", "/", TopicPermission{"amq.topic", `^sensors\.`, ".*"})
	check("no topic permissions for the user", "u", "amq.topic", "a.b", true)
	check("no topic permission for the exchange", "restricted", "other", "a.b", true)
	check("regexp allows", "restricted", "amq.topic", "sensors.a", true)
	check("regexp refuses", "restricted", "amq.topic", "a.b", false)
}

func TestTopicConcurrent(t *testing.T) {
	s := topicStore(t, "u")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			setTopic(t, s, "u", "/", TopicPermission{fmt.Sprintf("x%d", i%4), `^{username}\.`, "^{client_id}$"})
			s.ClearTopicPermission("u", "/", fmt.Sprintf("x%d", (i+2)%4))
			if i%7 == 0 {
				s.ClearTopicPermission("u", "/", "")
			}
		}
	})
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Go(func() {
			for i := range 2000 {
				x := fmt.Sprintf("x%d", i%4)
				if !s.CheckTopic("u", "/", Write, x, "u.k", TopicVars{}) {
					t.Errorf("reader %d: u.k refused on %s", r, x)
					return
				}
				id := fmt.Sprintf("c%d", i%100)
				if !s.CheckTopic("u", "/", Read, x, id, TopicVars{ClientID: id}) {
					t.Errorf("reader %d: client id refused on %s", r, x)
					return
				}
				s.TopicPermissions("u", "/")
			}
		})
	}
	readers.Wait()
	close(stop)
	wg.Wait()
}

func BenchmarkCheckTopic(b *testing.B) {
	s := NewStore()
	for i := range 1000 {
		u := fmt.Sprintf("user%d", i)
		s.PutUser(u, "p", nil)
		s.SetPermission(u, "/", Permission{".*", ".*", ".*"})
	}
	b.Run("none", func(b *testing.B) { // no user has topic permissions
		b.ReportAllocs()
		for b.Loop() {
			s.CheckTopic("user500", "/", Write, "amq.topic", "sensors.temp", TopicVars{})
		}
	})
	for i := range 500 {
		s.SetTopicPermission(fmt.Sprintf("user%d", i), "/", TopicPermission{"amq.topic", `^sensors\.`, `^{username}\.`})
	}
	b.Run("user_without", func(b *testing.B) { // others have some
		b.ReportAllocs()
		for b.Loop() {
			s.CheckTopic("user700", "/", Write, "amq.topic", "sensors.temp", TopicVars{})
		}
	})
	b.Run("regexp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.CheckTopic("user100", "/", Write, "amq.topic", "sensors.temp", TopicVars{})
		}
	})
	b.Run("variables", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.CheckTopic("user100", "/", Read, "amq.topic", "user100.inbox", TopicVars{})
		}
	})
	b.Run("parallel_user_without", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.CheckTopic("user700", "/", Write, "amq.topic", "sensors.temp", TopicVars{})
			}
		})
	})
}
