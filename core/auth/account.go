package auth

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrPersist is wrapped by the error of a change that the Store's
// [Persister] failed to store; the change was not made.
var ErrPersist = errors.New("storing account failed")

// Account is a user with all its permissions: what [Store.Account] returns,
// what [Store.PutAccount] takes and what a [Persister] stores.
type Account struct {
	User
	// Permissions are the user's vhost permissions, by vhost.
	Permissions map[string]Permission
	// TopicPermissions are the user's topic permissions, by vhost; each
	// list is sorted by exchange.
	TopicPermissions map[string][]TopicPermission
}

// Persister keeps accounts across restarts; the Store declares it and the
// program that owns the storage implements it.
//
// A Store with a Persister ([Store.SetPersister]) calls it for every change,
// before the change takes effect, with the whole account that changed (or
// the name of the deleted user). Calls are serialized, in the order of the
// changes, so the last call for a name is the current state. When a call
// fails the change is not made and the Store method returns an error
// wrapping [ErrPersist]. The Store's write lock is held during the call (not
// mu, so readers go on): a Persister must not change the Store.
type Persister interface {
	PutAccount(a *Account) error
	DeleteAccount(name string) error
}

// SetPersister makes every later change of s go through p first; nil stops
// that. Accounts already in s are not passed to p: load stored accounts
// with [Store.PutAccount] before setting p.
func (s *Store) SetPersister(p Persister) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.persist = p
}

// lookup returns the account of name, or nil. The account is immutable.
func (s *Store) lookup(name string) *account {
	return s.accounts()[name]
}

// accounts returns the current users map; it must not be modified.
func (s *Store) accounts() map[string]*account { return *s.users.Load() }

// commitLocked makes na the account of name (nil deletes it): it persists
// it, then installs it.
// REQUIRES: s.wmu.
func (s *Store) commitLocked(name string, na *account) error {
	if s.persist != nil {
		var err error
		if na == nil {
			err = s.persist.DeleteAccount(name)
		} else {
			err = s.persist.PutAccount(na.export())
		}
		if err != nil {
			return fmt.Errorf("%w: user %q: %v", ErrPersist, name, err)
		}
	}
	users := maps.Clone(s.accounts())
	delta := 0
	if old, ok := users[name]; ok {
		delta -= len(old.topics)
	}
	if na == nil {
		delete(users, name)
	} else {
		delta += len(na.topics)
		users[name] = na
	}
	// topicCount may be briefly above the map's count (never below it
	// while a permission is in the map), so CheckTopic never skips one.
	if delta > 0 {
		s.topicCount.Add(int64(delta))
	}
	s.users.Store(&users)
	if delta < 0 {
		s.topicCount.Add(int64(delta))
	}
	return nil
}

// export returns a copy of a as an Account.
func (a *account) export() *Account {
	out := &Account{User: *a.user.clone(), Permissions: make(map[string]Permission, len(a.perms))}
	for vhost, vp := range a.perms {
		out.Permissions[vhost] = vp.p
	}
	if len(a.topics) > 0 {
		out.TopicPermissions = make(map[string][]TopicPermission)
		for k, tp := range a.topics {
			out.TopicPermissions[k.vhost] = append(out.TopicPermissions[k.vhost], tp.p)
		}
		for _, l := range out.TopicPermissions {
			slices.SortFunc(l, func(a, b TopicPermission) int { return strings.Compare(a.Exchange, b.Exchange) })
		}
	}
	return out
}

// Account returns a copy of the account of user name.
func (s *Store) Account(name string) (*Account, bool) {
	a := s.lookup(name)
	if a == nil {
		return nil, false
	}
	return a.export(), true
}

// Accounts returns copies of every account, sorted by user name.
func (s *Store) Accounts() []*Account {
	accts := slices.Collect(maps.Values(s.accounts()))
	out := make([]*Account, 0, len(accts))
	for _, a := range accts {
		out = append(out, a.export())
	}
	slices.SortFunc(out, func(a, b *Account) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// PutAccount creates or replaces a whole account: the user as given
// (LoopbackOnly included) with exactly the given permissions. It is how
// stored or imported accounts are loaded. The password hash is checked as
// by [Store.PutUserHash]; a HashingAlgorithm that is set must agree with
// it. It fails, changing nothing, with [ErrInvalidUser], [ErrInvalidHash]
// or an error wrapping [ErrInvalidPermission] for an expression that does
// not compile.
func (s *Store) PutAccount(in *Account) error {
	if in.Name == "" {
		return ErrInvalidUser
	}
	alg := algorithmFor(in.PasswordHash)
	if len(in.PasswordHash) > 0 && (alg == "" || (in.HashingAlgorithm != "" && in.HashingAlgorithm != alg)) {
		return fmt.Errorf("%w: %d bytes for user %q with algorithm %q", ErrInvalidHash, len(in.PasswordHash), in.Name, in.HashingAlgorithm)
	}
	na := &account{user: *in.User.clone(), perms: make(map[string]*vhostPermission, len(in.Permissions))}
	na.user.HashingAlgorithm = alg
	if len(na.user.PasswordHash) == 0 {
		na.user.PasswordHash = nil
	}
	for vhost, p := range in.Permissions {
		vp, err := compilePermission(p)
		if err != nil {
			return err
		}
		na.perms[vhost] = vp
	}
	for vhost, l := range in.TopicPermissions {
		for _, p := range l {
			tp, err := compileTopicPermission(p)
			if err != nil {
				return err
			}
			if na.topics == nil {
				na.topics = make(map[topicKey]*topicPermission)
			}
			na.topics[topicKey{vhost, p.Exchange}] = tp
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.commitLocked(in.Name, na)
}
