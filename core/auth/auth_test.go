package auth

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Known vectors from RabbitMQ's password documentation ("Computing a
// password hash"): salt 908DC60A with password "test12" under SHA-256, and
// the older MD5 example, salt CAD5089B with password "simon".
const (
	vectorSHA256 = "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
	vectorMD5    = "ytUIm8s3AnKsXQjptplKFytfVxI="
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestHashVectors(t *testing.T) {
	got := base64.StdEncoding.EncodeToString(saltedHash(sha256.New(), mustHex("908DC60A"), "test12"))
	if got != vectorSHA256 {
		t.Errorf("sha256 vector = %s, want %s", got, vectorSHA256)
	}
	got = base64.StdEncoding.EncodeToString(saltedHash(md5.New(), mustHex("CAD5089B"), "simon"))
	if got != vectorMD5 {
		t.Errorf("md5 vector = %s, want %s", got, vectorMD5)
	}
}

func TestHashRoundTrip(t *testing.T) {
	h1, h2 := HashPassword("s3cret"), HashPassword("s3cret")
	if len(h1) != 36 || algorithmFor(h1) != HashSHA256 {
		t.Fatalf("hash is %d bytes (%q)", len(h1), algorithmFor(h1))
	}
	if string(h1) == string(h2) {
		t.Fatal("two hashes of one password share a salt")
	}
	for _, h := range [][]byte{h1, h2} {
		if !checkPassword(h, "s3cret") || checkPassword(h, "s3cret ") || checkPassword(h, "") {
			t.Fatal("checkPassword disagrees with HashPassword")
		}
	}
	s := NewStore()
	if err := s.PutUser("alice", "pässwörd", []string{"management"}); err != nil {
		t.Fatal(err)
	}
	u, err := s.Authenticate("alice", "pässwörd", false)
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "alice" || !u.HasTag("management") || u.HashingAlgorithm != HashSHA256 {
		t.Fatalf("user = %+v", u)
	}
}

func TestPutUserHash(t *testing.T) {
	s := NewStore()
	for name, vec := range map[string]string{"sha": vectorSHA256, "md5": vectorMD5} {
		raw, _ := base64.StdEncoding.DecodeString(vec)
		if err := s.PutUserHash(name, raw, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Authenticate("sha", "test12", true); err != nil {
		t.Errorf("sha256 import: %v", err)
	}
	if _, err := s.Authenticate("md5", "simon", true); err != nil {
		t.Errorf("md5 import: %v", err)
	}
	if _, err := s.Authenticate("sha", "test13", true); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("wrong password: %v", err)
	}
	sha512 := append(mustHex("01020304"), make([]byte, 64)...)
	if err := s.PutUserHash("long", sha512, nil); err != nil {
		t.Errorf("sha512-sized hash: %v", err)
	}
	if u, _ := s.User("long"); u.HashingAlgorithm != HashSHA512 {
		t.Errorf("algorithm = %q", u.HashingAlgorithm)
	}
	if err := s.PutUserHash("bad", make([]byte, 10), nil); !errors.Is(err, ErrInvalidHash) {
		t.Errorf("10-byte hash: %v", err)
	}
	if err := s.PutUserHash("nopass", nil, nil); err != nil {
		t.Errorf("empty hash: %v", err)
	}
	if _, err := s.Authenticate("nopass", "", true); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("passwordless user logged in: %v", err)
	}
}

func TestAuthenticateFailures(t *testing.T) {
	s := NewDefaultStore()
	if err := s.PutUser("nopass", "", nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, user, pass string
		loopback         bool
		want             error
	}{
		{"ok loopback", "guest", "guest", true, nil},
		{"loopback only", "guest", "guest", false, ErrLoopbackOnly},
		{"wrong password remote", "guest", "nope", false, ErrInvalidCredentials},
		{"wrong password", "guest", "Guest", true, ErrInvalidCredentials},
		{"unknown user", "nobody", "guest", true, ErrInvalidCredentials},
		{"empty password", "guest", "", true, ErrInvalidCredentials},
		{"passwordless user", "nopass", "", true, ErrInvalidCredentials},
		{"passwordless user with password", "nopass", "x", true, ErrInvalidCredentials},
		{"empty name", "", "", true, ErrInvalidCredentials},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u, err := s.Authenticate(c.user, c.pass, c.loopback)
			if err != c.want { // sentinels are returned as they are
				t.Fatalf("Authenticate = %v, want %v", err, c.want)
			}
			if (u != nil) != (c.want == nil) {
				t.Fatalf("user = %v with error %v", u, err)
			}
		})
	}
	if err := s.SetLoopbackOnly("guest", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate("guest", "guest", false); err != nil {
		t.Fatalf("after SetLoopbackOnly(false): %v", err)
	}
	if err := s.SetLoopbackOnly("nobody", true); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("SetLoopbackOnly(nobody) = %v", err)
	}
}

func TestUsers(t *testing.T) {
	s := NewStore()
	if err := s.PutUser("", "x", nil); !errors.Is(err, ErrInvalidUser) {
		t.Fatalf("empty name: %v", err)
	}
	tags := []string{"administrator"}
	s.PutUser("bob", "b", tags)
	s.PutUser("alice", "a", nil)
	tags[0] = "changed"
	u, ok := s.User("bob")
	if !ok || !u.HasTag("administrator") {
		t.Fatalf("User(bob) = %+v, %v", u, ok)
	}
	u.Tags[0] = "mutated"
	u.PasswordHash[5] ^= 0xff
	if u2, _ := s.User("bob"); !u2.HasTag("administrator") {
		t.Fatal("returned user aliases the store")
	}
	if _, err := s.Authenticate("bob", "b", true); err != nil {
		t.Fatal("returned hash aliases the store")
	}
	var names []string
	for _, u := range s.Users() {
		names = append(names, u.Name)
	}
	if strings.Join(names, ",") != "alice,bob" {
		t.Fatalf("Users = %v", names)
	}

	// Updating a user keeps its permissions and loopback flag.
	s.SetPermission("bob", "/", Permission{".*", ".*", ".*"})
	s.SetLoopbackOnly("bob", true)
	if err := s.PutUser("bob", "b2", []string{"management"}); err != nil {
		t.Fatal(err)
	}
	if !s.CanAccessVhost("bob", "/") {
		t.Fatal("update dropped permissions")
	}
	if _, err := s.Authenticate("bob", "b2", false); err != ErrLoopbackOnly {
		t.Fatalf("update dropped LoopbackOnly: %v", err)
	}
	if _, err := s.Authenticate("bob", "b", true); err != ErrInvalidCredentials {
		t.Fatalf("old password still works: %v", err)
	}

	// Deleting a user deletes its permissions.
	if err := s.DeleteUser("bob"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser("bob"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("second delete: %v", err)
	}
	if _, ok := s.User("bob"); ok {
		t.Fatal("deleted user still there")
	}
	s.PutUser("bob", "b", nil)
	if s.CanAccessVhost("bob", "/") {
		t.Fatal("recreated user inherited permissions")
	}
}

func TestDefaultStore(t *testing.T) {
	s := NewDefaultStore()
	u, ok := s.User("guest")
	if !ok || !u.LoopbackOnly || !u.HasTag("administrator") {
		t.Fatalf("guest = %+v", u)
	}
	if p, _ := s.Permission("guest", "/"); p != (Permission{".*", ".*", ".*"}) {
		t.Fatalf("guest permission = %+v", p)
	}
	if !s.Check("guest", "/", Configure, "anything") || s.Check("guest", "other", Read, "q") {
		t.Fatal("guest permissions wrong")
	}
}

func TestPermissionMatching(t *testing.T) {
	cases := []struct {
		expr     string
		resource string
		want     bool
	}{
		{".*", "anything", true},
		{".*", "amq.gen-JzTY20BRgKO-HjmUJj0wLg", true},
		{".*", "", true}, // the default exchange
		{"^$", "q", false},
		{"^$", "", false}, // "" is amq.default, which "^$" does not allow
		{"", "q", false},
		{"", "", false},
		// Unanchored, like re:run.
		{"amq", "my.amq.queue", true},
		{"foo", "xfoox", true},
		{"foo|bar", "xbar", true},
		{"^foo$", "foo", true},
		{"^foo$", "foobar", false},
		{"^foo", "foobar", true},
		{"bar$", "foobar", true},
		// The usual restricted-user pattern.
		{`^(amq\.gen.*|amq\.default)$`, "amq.gen-abc", true},
		{`^(amq\.gen.*|amq\.default)$`, "amq.default", true},
		{`^(amq\.gen.*|amq\.default)$`, "", true},
		{`^(amq\.gen.*|amq\.default)$`, "amq.topic", false},
		{`^(amq\.gen.*|amq\.default)$`, "amqXgen", false},
		{`^user-alice\.`, "user-alice.inbox", true},
		{`^user-alice\.`, "user-bob.inbox", false},
		// Case matters.
		{"^Q$", "q", false},
		{"(?i)^Q$", "q", true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s~%s", c.expr, c.resource), func(t *testing.T) {
			s := NewStore()
			s.PutUser("u", "p", nil)
			for _, kind := range []Access{Configure, Write, Read} {
				p := Permission{"^$", "^$", "^$"}
				switch kind {
				case Configure:
					p.Configure = c.expr
				case Write:
					p.Write = c.expr
				case Read:
					p.Read = c.expr
				}
				if err := s.SetPermission("u", "v", p); err != nil {
					t.Fatal(err)
				}
				if got := s.Check("u", "v", kind, c.resource); got != c.want {
					t.Fatalf("%s: Check = %v, want %v", kind, got, c.want)
				}
				for _, other := range []Access{Configure, Write, Read} {
					if other != kind && s.Check("u", "v", other, c.resource) {
						t.Fatalf("%s allowed by the %s expression", other, kind)
					}
				}
			}
		})
	}
}

func TestSetPermissionErrors(t *testing.T) {
	s := NewStore()
	s.PutUser("u", "p", nil)
	err := s.SetPermission("u", "/", Permission{".*", "a(b", ".*"})
	if !errors.Is(err, ErrInvalidPermission) || !strings.Contains(err.Error(), "write") || !strings.Contains(err.Error(), `"a(b"`) {
		t.Fatalf("bad write regex: %v", err)
	}
	err = s.SetPermission("u", "/", Permission{".*", ".*", `(?<=a)b`})
	if !errors.Is(err, ErrInvalidPermission) || !strings.Contains(err.Error(), "read") {
		t.Fatalf("PCRE-only regex: %v", err)
	}
	if s.CanAccessVhost("u", "/") {
		t.Fatal("a failed SetPermission left permissions behind")
	}
	if err := s.SetPermission("nobody", "/", Permission{}); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("unknown user: %v", err)
	}
	if s.Check("u", "/", Access(0), "q") || s.Check("u", "/", Access(9), "q") {
		t.Fatal("invalid Access allowed")
	}
}

func TestVhostAccess(t *testing.T) {
	s := NewStore()
	s.PutUser("u", "p", nil)
	if s.CanAccessVhost("u", "/") || s.CanAccessVhost("nobody", "/") {
		t.Fatal("access without permissions")
	}
	// Permissions that allow nothing still open the vhost, as in RabbitMQ.
	s.SetPermission("u", "/", Permission{"", "", ""})
	s.SetPermission("u", "other", Permission{".*", ".*", ".*"})
	if !s.CanAccessVhost("u", "/") || s.Check("u", "/", Read, "q") {
		t.Fatal("empty permissions")
	}
	if p, ok := s.Permission("u", "/"); !ok || p != (Permission{}) {
		t.Fatalf("Permission = %+v, %v", p, ok)
	}
	if err := s.ClearPermission("u", "/"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearPermission("u", "/"); err != nil {
		t.Fatalf("clearing twice: %v", err)
	}
	if err := s.ClearPermission("nobody", "/"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("unknown user: %v", err)
	}
	if s.CanAccessVhost("u", "/") || !s.CanAccessVhost("u", "other") {
		t.Fatal("ClearPermission cleared the wrong vhost")
	}
}

func TestCheckAllocs(t *testing.T) {
	s := NewStore()
	s.PutUser("u", "p", nil)
	s.SetPermission("u", "/", Permission{".*", `^(amq\.gen.*|amq\.default)$`, "^$"})
	s.Check("u", "/", Write, "amq.gen-x") // warm the regexp's machine pool
	for _, c := range []struct {
		kind Access
		res  string
		want bool
	}{
		{Configure, "q", true},
		{Write, "amq.gen-x", true},
		{Write, "", true},
		{Write, "q", false},
		{Read, "q", false},
	} {
		n := testing.AllocsPerRun(100, func() {
			if s.Check("u", "/", c.kind, c.res) != c.want {
				panic("wrong result")
			}
		})
		if n != 0 {
			t.Errorf("Check(%s, %q): %v allocations, want 0", c.kind, c.res, n)
		}
	}
}

func TestConcurrent(t *testing.T) {
	s := NewDefaultStore()
	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	writers.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("u%d", i%8)
			s.PutUser(name, "p", nil)
			s.SetPermission(name, "/", Permission{"^x", "^y", "^z"})
			s.SetPermission("guest", fmt.Sprintf("v%d", i%8), Permission{".*", "", ""})
			s.ClearPermission("guest", fmt.Sprintf("v%d", (i+4)%8))
			s.SetLoopbackOnly(name, i%2 == 0)
			if i%3 == 0 {
				s.DeleteUser(name)
			}
		}
	})
	errs := make(chan string, 8)
	for r := range 4 {
		readers.Go(func() {
			for i := range 300 {
				if !s.Check("guest", "/", Read, "q") || s.Check("guest", "nope", Read, "q") {
					errs <- "guest permissions changed"
					return
				}
				s.Check(fmt.Sprintf("u%d", i%8), "/", Write, "yes")
				s.CanAccessVhost("u1", "/")
				s.Users()
				if i%50 == r {
					if _, err := s.Authenticate("guest", "guest", true); err != nil {
						errs <- err.Error()
						return
					}
					s.Authenticate("u1", "p", false)
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	writers.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func BenchmarkCheck(b *testing.B) {
	s := NewStore()
	for i := range 1000 {
		u := fmt.Sprintf("user%d", i)
		s.PutUser(u, "p", nil)
		s.SetPermission(u, "/", Permission{".*", `^(amq\.gen.*|amq\.default)$`, `^user\d+\.`})
	}
	b.Run("shortcut", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Check("user500", "/", Configure, "orders")
		}
	})
	b.Run("regexp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Check("user500", "/", Read, "user500.inbox")
		}
	})
}

func BenchmarkAuthenticate(b *testing.B) {
	s := NewDefaultStore()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Authenticate("guest", "guest", true); err != nil {
			b.Fatal(err)
		}
	}
}
