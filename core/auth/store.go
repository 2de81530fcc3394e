package auth

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

var (
	// ErrInvalidCredentials is returned by Authenticate for an unknown user,
	// a wrong or empty password, or a user without a password. Adapters
	// report it as AMQP ACCESS_REFUSED (403).
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrLoopbackOnly is returned by Authenticate, after the password was
	// accepted, when the user may connect only from a loopback address.
	ErrLoopbackOnly = errors.New("user can only connect via localhost")
	// ErrNoSuchUser is returned when a method names a user that does not
	// exist.
	ErrNoSuchUser = errors.New("no such user")
	// ErrInvalidUser is returned for an empty user name.
	ErrInvalidUser = errors.New("invalid user name")
	// ErrInvalidHash is returned by PutUserHash for a hash whose length fits
	// no supported algorithm.
	ErrInvalidHash = errors.New("invalid password hash")
	// ErrInvalidPermission is wrapped by the error of SetPermission when a
	// regular expression does not compile; the message names it.
	ErrInvalidPermission = errors.New("invalid permission")
)

// Access is a kind of access to a resource.
type Access uint8

// The three kinds of access RabbitMQ distinguishes.
const (
	// Configure is creating, deleting or changing a resource.
	Configure Access = iota + 1
	// Write is putting messages into a resource (publishing to an exchange,
	// binding a queue or exchange as a destination).
	Write
	// Read is taking messages out of a resource (consuming from a queue,
	// binding from an exchange as a source).
	Read
)

// String returns "configure", "write" or "read".
func (a Access) String() string {
	switch a {
	case Configure:
		return "configure"
	case Write:
		return "write"
	case Read:
		return "read"
	}
	return fmt.Sprintf("Access(%d)", uint8(a))
}

// Permission is a user's access to one vhost: a regular expression per kind
// of access, matched against resource names (see the package documentation
// for the exact rules). ".*" allows everything and "^$" or "" nothing.
type Permission struct {
	Configure string
	Write     string
	Read      string
}

// User is a user account. The Store hands out copies.
type User struct {
	// Name is the user name.
	Name string
	// Tags are the user's tags, such as "administrator" or "management".
	Tags []string
	// LoopbackOnly restricts the user to connections from a loopback
	// address, as RabbitMQ's loopback_users does for "guest".
	LoopbackOnly bool
	// PasswordHash is the salted hash in RabbitMQ's format, not base64
	// encoded: 4 bytes of salt, then the digest of salt || password. It is
	// empty for a user without a password.
	PasswordHash []byte
	// HashingAlgorithm names the digest of PasswordHash, one of HashSHA256,
	// HashSHA512 or HashMD5; empty when there is no password.
	HashingAlgorithm string
}

// HasTag reports whether the user has tag.
func (u *User) HasTag(tag string) bool { return slices.Contains(u.Tags, tag) }

func (u *User) clone() *User {
	c := *u
	c.Tags = slices.Clone(u.Tags)
	c.PasswordHash = slices.Clone(u.PasswordHash)
	return &c
}

// Store holds users and permissions. The zero value is not usable; call
// [NewStore] or [NewDefaultStore]. A Store is safe for concurrent use.
type Store struct {
	// wmu serializes changes and their persistence.
	wmu sync.Mutex
	// persist, when set, stores every change before it is made.
	// REQUIRES: wmu.
	persist Persister

	// users by name: a copy-on-write map, read without a lock (every
	// publish checks permissions), replaced as a whole under wmu. Neither
	// the map nor its accounts are ever modified once stored.
	users atomic.Pointer[map[string]*account]
	// topicCount is the number of topic permissions of all users, so that
	// CheckTopic skips the map while there are none. Written under wmu.
	topicCount atomic.Int64
}

// account is a user and its permissions. Fields are replaced, never
// modified in place, so copies taken under the read lock stay valid.
type account struct {
	user   User
	perms  map[string]*vhostPermission   // by vhost
	topics map[topicKey]*topicPermission // nil when there are none
}

// vhostPermission is a Permission with its expressions compiled.
type vhostPermission struct {
	p       Permission
	matcher [3]matcher // indexed by Access-1
}

// matcher is one compiled expression, with shortcuts for the common ones.
type matcher struct {
	all  bool // ".*" and friends: every name
	none bool // "" or "^$": only the empty name, which Check never passes
	re   *regexp.Regexp
}

func (m *matcher) match(name string) bool {
	switch {
	case m.all:
		return true
	case m.none:
		return name == ""
	}
	return m.re.MatchString(name)
}

func compileMatcher(kind Access, expr string) (matcher, error) {
	switch expr {
	case ".*", "^.*", ".*$", "^.*$":
		return matcher{all: true}, nil
	case "", "^$":
		return matcher{none: true}, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return matcher{}, fmt.Errorf("%w: %s regular expression %q: %v", ErrInvalidPermission, kind, expr, err)
	}
	return matcher{re: re}, nil
}

// NewStore returns an empty store.
func NewStore() *Store {
	s := &Store{}
	m := make(map[string]*account)
	s.users.Store(&m)
	return s
}

// NewDefaultStore returns a store with RabbitMQ's initial account: user
// "guest" with password "guest", tag "administrator", allowed only from
// loopback addresses, and full permissions on vhost "/".
func NewDefaultStore() *Store {
	s := NewStore()
	if err := s.PutUser("guest", "guest", []string{"administrator"}); err != nil {
		panic(err)
	}
	if err := s.SetLoopbackOnly("guest", true); err != nil {
		panic(err)
	}
	if err := s.SetPermission("guest", "/", Permission{".*", ".*", ".*"}); err != nil {
		panic(err)
	}
	return s
}

// PutUser creates user name, or updates it if it exists, with password
// hashed the way RabbitMQ does by default (see [HashPassword]) and tags. An
// empty password makes a user without a password, who cannot log in with
// one. Updating keeps the user's permissions and LoopbackOnly.
func (s *Store) PutUser(name, password string, tags []string) error {
	var h []byte
	if password != "" {
		h = HashPassword(password)
	}
	return s.putUser(name, h, tags)
}

// PutUserHash is PutUser with a password hash in RabbitMQ's format,
// base64-decoded, as found in definitions files. The algorithm is told by
// the length: 36 bytes is SHA-256, 68 SHA-512 and 20 MD5; an empty hash
// makes a user without a password. Other lengths give [ErrInvalidHash].
func (s *Store) PutUserHash(name string, hash []byte, tags []string) error {
	if len(hash) > 0 && algorithmFor(hash) == "" {
		return fmt.Errorf("%w: %d bytes for user %q", ErrInvalidHash, len(hash), name)
	}
	return s.putUser(name, slices.Clone(hash), tags)
}

func (s *Store) putUser(name string, hash []byte, tags []string) error {
	if name == "" {
		return ErrInvalidUser
	}
	u := User{
		Name:             name,
		Tags:             slices.Clone(tags),
		PasswordHash:     hash,
		HashingAlgorithm: algorithmFor(hash),
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if a := s.lookup(name); a != nil {
		u.LoopbackOnly = a.user.LoopbackOnly
		na := *a
		na.user = u
		return s.commitLocked(name, &na)
	}
	return s.commitLocked(name, &account{user: u, perms: make(map[string]*vhostPermission)})
}

// DeleteUser deletes a user and its permissions, topic permissions
// included.
func (s *Store) DeleteUser(name string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.lookup(name) == nil {
		return fmt.Errorf("%w: %q", ErrNoSuchUser, name)
	}
	return s.commitLocked(name, nil)
}

// User returns a copy of user name.
func (s *Store) User(name string) (*User, bool) {
	a, ok := s.accounts()[name]
	if !ok {
		return nil, false
	}
	return a.user.clone(), true
}

// Users returns copies of every user, sorted by name.
func (s *Store) Users() []*User {
	users := s.accounts()
	out := make([]*User, 0, len(users))
	for _, a := range users {
		out = append(out, a.user.clone())
	}
	slices.SortFunc(out, func(a, b *User) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SetLoopbackOnly sets whether user name may connect only from a loopback
// address.
func (s *Store) SetLoopbackOnly(name string, v bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a := s.lookup(name)
	if a == nil {
		return fmt.Errorf("%w: %q", ErrNoSuchUser, name)
	}
	na := *a
	na.user.LoopbackOnly = v
	return s.commitLocked(name, &na)
}

// Authenticate checks name and password and returns a copy of the user.
// loopback tells whether the client connected from a loopback address. It
// returns [ErrInvalidCredentials] for an unknown user and for a wrong or
// empty password alike, and [ErrLoopbackOnly] when the password is right
// but the user may connect only from loopback and loopback is false.
func (s *Store) Authenticate(name, password string, loopback bool) (*User, error) {
	a := s.accounts()[name]
	known := a != nil && len(a.user.PasswordHash) > 0
	stored := dummyHash
	if known {
		stored = a.user.PasswordHash // never modified in place
	}
	ok := checkPassword(stored, password)
	if !known || password == "" || !ok {
		return nil, ErrInvalidCredentials
	}
	if a.user.LoopbackOnly && !loopback {
		return nil, ErrLoopbackOnly
	}
	return a.user.clone(), nil
}

// SetPermission sets the permissions of user on vhost, replacing any
// previous ones. It fails with an error wrapping [ErrInvalidPermission],
// naming the kind and the expression, if an expression does not compile,
// and with [ErrNoSuchUser] if the user does not exist. It does not check
// that the vhost exists.
func (s *Store) SetPermission(user, vhost string, p Permission) error {
	vp, err := compilePermission(p)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a := s.lookup(user)
	if a == nil {
		return fmt.Errorf("%w: %q", ErrNoSuchUser, user)
	}
	perms := make(map[string]*vhostPermission, len(a.perms)+1)
	for k, v := range a.perms {
		perms[k] = v
	}
	perms[vhost] = vp
	na := *a
	na.perms = perms
	return s.commitLocked(user, &na)
}

func compilePermission(p Permission) (*vhostPermission, error) {
	vp := &vhostPermission{p: p}
	for i, expr := range [3]string{p.Configure, p.Write, p.Read} {
		m, err := compileMatcher(Access(i+1), expr)
		if err != nil {
			return nil, err
		}
		vp.matcher[i] = m
	}
	return vp, nil
}

// ClearPermission removes the permissions of user on vhost. Clearing
// permissions that are not set is not an error.
func (s *Store) ClearPermission(user, vhost string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a := s.lookup(user)
	if a == nil {
		return fmt.Errorf("%w: %q", ErrNoSuchUser, user)
	}
	if _, ok := a.perms[vhost]; !ok {
		return nil
	}
	perms := make(map[string]*vhostPermission, len(a.perms))
	for k, v := range a.perms {
		if k != vhost {
			perms[k] = v
		}
	}
	na := *a
	na.perms = perms
	return s.commitLocked(user, &na)
}

// Permission returns the permissions of user on vhost, as they were set.
func (s *Store) Permission(user, vhost string) (Permission, bool) {
	if a, ok := s.accounts()[user]; ok {
		if vp, ok := a.perms[vhost]; ok {
			return vp.p, true
		}
	}
	return Permission{}, false
}

// CanAccessVhost reports whether user may open vhost: whether it has
// permissions there, whatever they allow.
func (s *Store) CanAccessVhost(user, vhost string) bool {
	_, ok := s.Permission(user, vhost)
	return ok
}

// Check reports whether user may have access kind to the exchange or queue
// named resource in vhost. The default exchange may be passed as "" or
// "amq.default". Check compiles nothing and allocates nothing.
func (s *Store) Check(user, vhost string, kind Access, resource string) bool {
	if kind < Configure || kind > Read {
		return false
	}
	if resource == "" {
		resource = "amq.default"
	}
	var vp *vhostPermission
	if a, ok := s.accounts()[user]; ok {
		vp = a.perms[vhost]
	}
	return vp != nil && vp.matcher[kind-1].match(resource)
}
