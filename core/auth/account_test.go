package auth

import (
	"errors"
	"reflect"
	"sync"
	"testing"
)

// memPersister records what a Store persists; fail makes it refuse.
type memPersister struct {
	mu    sync.Mutex
	accts map[string]*Account
	calls int
	fail  error
}

func (p *memPersister) PutAccount(a *Account) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.fail != nil {
		return p.fail
	}
	p.accts[a.Name] = a
	return nil
}

func (p *memPersister) DeleteAccount(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.fail != nil {
		return p.fail
	}
	delete(p.accts, name)
	return nil
}

// Every kind of change reaches the Persister as the whole account, and
// loading what it stored into a fresh Store gives the same accounts.
func TestPersisterSeesEveryChange(t *testing.T) {
	s := NewStore()
	p := &memPersister{accts: map[string]*Account{}}
	s.SetPersister(p)
	steps := []func() error{
		func() error { return s.PutUser("ann", "pw", []string{"management"}) },
		func() error { return s.SetLoopbackOnly("ann", true) },
		func() error { return s.SetPermission("ann", "/", Permission{".*", "^a", ""}) },
		func() error { return s.SetPermission("ann", "v2", Permission{"", "", ".*"}) },
		func() error { return s.ClearPermission("ann", "v2") },
		func() error {
			return s.SetTopicPermission("ann", "/", TopicPermission{Exchange: "amq.topic", Write: "^x", Read: ".*"})
		},
		func() error {
			return s.SetTopicPermission("ann", "/", TopicPermission{Exchange: "t2", Write: "^{username}", Read: ""})
		},
		func() error { return s.ClearTopicPermission("ann", "/", "t2") },
		func() error { return s.PutUser("bob", "", nil) },
		func() error { return s.DeleteUser("bob") },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if p.calls != i+1 {
			t.Fatalf("step %d: %d persister calls", i, p.calls)
		}
		want, _ := s.Account("ann")
		if !reflect.DeepEqual(p.accts["ann"], want) {
			t.Fatalf("step %d: persisted %+v, store has %+v", i, p.accts["ann"], want)
		}
	}
	if _, ok := p.accts["bob"]; ok {
		t.Fatal("deleted user still persisted")
	}
	// A no-op clear persists nothing.
	if err := s.ClearPermission("ann", "nowhere"); err != nil || p.calls != len(steps) {
		t.Fatalf("no-op clear: err %v, %d calls", err, p.calls)
	}

	r := NewStore()
	for _, a := range p.accts {
		if err := r.PutAccount(a); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(r.Accounts(), s.Accounts()) {
		t.Fatalf("restored %+v, want %+v", r.Accounts(), s.Accounts())
	}
	if _, err := r.Authenticate("ann", "pw", true); err != nil {
		t.Fatalf("restored user: %v", err)
	}
	if _, err := r.Authenticate("ann", "pw", false); !errors.Is(err, ErrLoopbackOnly) {
		t.Fatalf("restored loopback flag: %v", err)
	}
	if !r.CheckTopic("ann", "/", Write, "amq.topic", "xy", TopicVars{}) || r.CheckTopic("ann", "/", Write, "amq.topic", "y", TopicVars{}) {
		t.Fatal("restored topic permission not enforced")
	}
	if !r.HasTopicPermissions() {
		t.Fatal("restored topic count is zero")
	}
}

// A change the Persister refuses is not made.
func TestPersisterFailureChangesNothing(t *testing.T) {
	s := NewStore()
	if err := s.PutUser("ann", "pw", nil); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	p := &memPersister{accts: map[string]*Account{}, fail: boom}
	s.SetPersister(p)
	before := s.Accounts()
	for i, err := range []error{
		s.PutUser("ann", "other", []string{"administrator"}),
		s.PutUser("bob", "pw", nil),
		s.SetPermission("ann", "/", Permission{".*", ".*", ".*"}),
		s.SetTopicPermission("ann", "/", TopicPermission{Exchange: "amq.topic", Write: "^$", Read: "^$"}),
		s.DeleteUser("ann"),
	} {
		if !errors.Is(err, ErrPersist) {
			t.Errorf("change %d: err %v, want ErrPersist", i, err)
		}
	}
	if !reflect.DeepEqual(s.Accounts(), before) {
		t.Fatalf("store changed: %+v", s.Accounts())
	}
	if s.HasTopicPermissions() {
		t.Fatal("topic count changed")
	}
}

func TestPutAccount(t *testing.T) {
	s := NewStore()
	h := HashPassword("pw")
	a := &Account{
		User:             User{Name: "ann", Tags: []string{"administrator"}, LoopbackOnly: true, PasswordHash: h},
		Permissions:      map[string]Permission{"/": {".*", ".*", ".*"}},
		TopicPermissions: map[string][]TopicPermission{"/": {{Exchange: "b", Write: "^b"}, {Exchange: "a", Read: "^a"}}},
	}
	if err := s.PutAccount(a); err != nil {
		t.Fatal(err)
	}
	got, ok := s.Account("ann")
	if !ok || got.HashingAlgorithm != HashSHA256 || !got.LoopbackOnly {
		t.Fatalf("account %+v", got)
	}
	if tp := got.TopicPermissions["/"]; len(tp) != 2 || tp[0].Exchange != "a" || tp[1].Exchange != "b" {
		t.Fatalf("topic permissions not sorted: %+v", tp)
	}
	// Replacing drops what the new account does not have.
	if err := s.PutAccount(&Account{User: User{Name: "ann"}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Account("ann"); len(got.Permissions) != 0 || got.TopicPermissions != nil || s.HasTopicPermissions() {
		t.Fatalf("replaced account %+v", got)
	}
	for _, bad := range []*Account{
		{User: User{Name: ""}},
		{User: User{Name: "x", PasswordHash: []byte{1, 2, 3}}},
		{User: User{Name: "x", PasswordHash: h, HashingAlgorithm: HashMD5}},
		{User: User{Name: "x"}, Permissions: map[string]Permission{"/": {"(", "", ""}}},
		{User: User{Name: "x"}, TopicPermissions: map[string][]TopicPermission{"/": {{Exchange: "", Write: ".*"}}}},
	} {
		if err := s.PutAccount(bad); err == nil {
			t.Errorf("PutAccount(%+v) succeeded", bad)
		}
	}
	if _, ok := s.User("x"); ok {
		t.Fatal("invalid account stored")
	}
}
