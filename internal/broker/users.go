package broker

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/core/auth"
)

// Keys of the user store's records in the shared definition store. Part of
// the on-disk format.
const (
	// authKeyPrefix keeps accounts apart from the core's definitions.
	authKeyPrefix = "auth\x00"
	// userKeyPrefix + user name holds one account (storedAccount, JSON).
	userKeyPrefix = "user\x00"
	// seededKey is written once the node's first accounts exist, so that
	// the default user is created only on a fresh node, as in RabbitMQ,
	// even if every user is later deleted.
	seededKey = "seeded"
	// accountVersion is the version of storedAccount.
	accountVersion = 1
)

// storedAccount is an account as stored: a user with its permissions and
// topic permissions, one record per user.
type storedAccount struct {
	Version          int                     `json:"v"`
	Name             string                  `json:"name"`
	PasswordHash     []byte                  `json:"password_hash,omitempty"` // base64 in JSON
	HashingAlgorithm string                  `json:"hashing_algorithm,omitempty"`
	Tags             []string                `json:"tags,omitempty"`
	LoopbackOnly     bool                    `json:"loopback_only,omitempty"`
	Permissions      []storedPermission      `json:"permissions,omitempty"`
	TopicPermissions []storedTopicPermission `json:"topic_permissions,omitempty"`
}

type storedPermission struct {
	Vhost     string `json:"vhost"`
	Configure string `json:"configure"`
	Write     string `json:"write"`
	Read      string `json:"read"`
}

type storedTopicPermission struct {
	Vhost    string `json:"vhost"`
	Exchange string `json:"exchange"`
	Write    string `json:"write"`
	Read     string `json:"read"`
}

func encodeAccount(a *auth.Account) ([]byte, error) {
	s := storedAccount{Version: accountVersion, Name: a.Name, PasswordHash: a.PasswordHash,
		HashingAlgorithm: a.HashingAlgorithm, Tags: a.Tags, LoopbackOnly: a.LoopbackOnly}
	for _, v := range sortedKeys(a.Permissions) {
		p := a.Permissions[v]
		s.Permissions = append(s.Permissions, storedPermission{v, p.Configure, p.Write, p.Read})
	}
	for _, v := range sortedKeys(a.TopicPermissions) {
		for _, p := range a.TopicPermissions[v] {
			s.TopicPermissions = append(s.TopicPermissions, storedTopicPermission{v, p.Exchange, p.Write, p.Read})
		}
	}
	return json.Marshal(s)
}

func decodeAccount(val []byte) (*auth.Account, error) {
	var s storedAccount
	if err := json.Unmarshal(val, &s); err != nil {
		return nil, err
	}
	if s.Version != accountVersion {
		return nil, fmt.Errorf("unknown account record version %d", s.Version)
	}
	a := &auth.Account{
		User: auth.User{Name: s.Name, Tags: s.Tags, LoopbackOnly: s.LoopbackOnly,
			PasswordHash: s.PasswordHash, HashingAlgorithm: s.HashingAlgorithm},
		Permissions: make(map[string]auth.Permission, len(s.Permissions)),
	}
	for _, p := range s.Permissions {
		a.Permissions[p.Vhost] = auth.Permission{Configure: p.Configure, Write: p.Write, Read: p.Read}
	}
	for _, p := range s.TopicPermissions {
		if a.TopicPermissions == nil {
			a.TopicPermissions = make(map[string][]auth.TopicPermission)
		}
		a.TopicPermissions[p.Vhost] = append(a.TopicPermissions[p.Vhost],
			auth.TopicPermission{Exchange: p.Exchange, Write: p.Write, Read: p.Read})
	}
	return a, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// accountStore is the auth.Persister of the broker: one record per user in
// the definition store, under authKeyPrefix.
type accountStore struct{ kv prefixStore }

func (s accountStore) PutAccount(a *auth.Account) error {
	val, err := encodeAccount(a)
	if err != nil {
		return err
	}
	return s.kv.Put(userKeyPrefix+a.Name, val)
}

func (s accountStore) DeleteAccount(name string) error { return s.kv.Delete(userKeyPrefix + name) }

// openUsers returns the user store, persisted in meta. On a fresh node
// (nothing stored yet) it creates the default user of cfg, if any, with
// full permissions on "/"; later the stored accounts win over cfg.
func openUsers(cfg *config.Config, meta metaKV, log *slog.Logger) (*auth.Store, error) {
	kv := prefixStore{meta: meta, prefix: authKeyPrefix}
	users := auth.NewStore()
	stored := kv.All()
	if len(stored) == 0 {
		users.SetPersister(accountStore{kv})
		if cfg.DefaultUser != "" {
			a := &auth.Account{
				User: auth.User{Name: cfg.DefaultUser, Tags: []string{"administrator"},
					LoopbackOnly: !cfg.DefaultUserAnyHost},
				Permissions: map[string]auth.Permission{"/": {Configure: ".*", Write: ".*", Read: ".*"}},
			}
			if cfg.DefaultPass != "" {
				a.PasswordHash = auth.HashPassword(cfg.DefaultPass)
			}
			if err := users.PutAccount(a); err != nil {
				return nil, fmt.Errorf("default user: %w", err)
			}
			log.Info("created default user", "user", cfg.DefaultUser, "loopback_only", a.LoopbackOnly)
		}
		// After the default user: a crash in between leaves its record,
		// which also marks the node as seeded.
		if err := kv.Put(seededKey, []byte{1}); err != nil {
			return nil, fmt.Errorf("users: %w", err)
		}
		return users, nil
	}
	n := 0
	for _, key := range sortedKeys(stored) {
		name, ok := strings.CutPrefix(key, userKeyPrefix)
		if !ok {
			continue
		}
		a, err := decodeAccount(stored[key])
		if err == nil && a.Name != name {
			err = fmt.Errorf("record names user %q", a.Name)
		}
		if err == nil {
			err = users.PutAccount(a)
		}
		if err != nil {
			log.Error("skipping unreadable user record", "user", name, "err", err)
			continue
		}
		n++
	}
	log.Info("recovered users", "users", n)
	users.SetPersister(accountStore{kv})
	return users, nil
}

// metaKV is the part of the definition store that prefixStore uses.
type metaKV interface {
	Put(key string, val []byte) error
	Delete(key string) error
	All() map[string][]byte
}
