package auth

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// TopicPermission is a user's topic authorisation on one topic exchange of a
// vhost: a regular expression per kind of access, matched against routing
// keys (see the package documentation). Write applies to publishing, Read to
// binding from the exchange (and to MQTT and STOMP subscriptions). The
// expressions may contain the variables {username}, {vhost} and
// {client_id}.
type TopicPermission struct {
	Exchange string
	Write    string
	Read     string
}

// TopicVars are the values of the variables of topic permissions that do not
// come from CheckTopic's arguments.
type TopicVars struct {
	// ClientID is the MQTT client identifier. When it is empty,
	// "{client_id}" is not expanded, as in RabbitMQ for protocols without
	// client identifiers.
	ClientID string
}

// topicKey names a topic permission within an account.
type topicKey struct {
	vhost    string
	exchange string
}

// topicPermission is a TopicPermission with its expressions compiled.
// Immutable except for the caches of its matchers, which have their own
// locks.
type topicPermission struct {
	p       TopicPermission
	matcher [2]topicMatcher // Write, Read
}

// maxTopicCache bounds the compiled expansions a topicMatcher keeps.
const maxTopicCache = 64

// topicMatcher is one topic expression. Without variables it is compiled
// once; with variables each distinct expansion is compiled on first use and
// kept in a small cache.
type topicMatcher struct {
	static matcher // when !vars
	vars   bool
	expr   string // as written; "" already replaced by "^$"

	mu    sync.Mutex
	cache map[string]*regexp.Regexp // expansion -> compiled; nil when it does not compile. REQUIRES: mu.
}

// topicVarNames are the variables topic expressions may contain.
var topicVarNames = [...]string{"{username}", "{vhost}", "{client_id}"}

func hasTopicVars(expr string) bool {
	for _, v := range topicVarNames {
		if strings.Contains(expr, v) {
			return true
		}
	}
	return false
}

// expandTopic replaces the variables of expr in one pass, so that a value
// that itself looks like a variable is not expanded again. Values are
// regexp-quoted; a variable without a value stays as written.
func expandTopic(expr, user, vhost, clientID string) string {
	var b strings.Builder
	b.Grow(len(expr) + len(user) + len(vhost) + len(clientID))
	for {
		i := strings.IndexByte(expr, '{')
		if i < 0 {
			b.WriteString(expr)
			return b.String()
		}
		b.WriteString(expr[:i])
		expr = expr[i:]
		var val string
		n := 0
		switch {
		case strings.HasPrefix(expr, "{username}"):
			val, n = user, len("{username}")
		case strings.HasPrefix(expr, "{vhost}"):
			val, n = vhost, len("{vhost}")
		case strings.HasPrefix(expr, "{client_id}") && clientID != "":
			val, n = clientID, len("{client_id}")
		}
		if n == 0 {
			b.WriteByte('{')
			expr = expr[1:]
			continue
		}
		b.WriteString(regexp.QuoteMeta(val))
		expr = expr[n:]
	}
}

func compileTopicMatcher(kind Access, exchange, expr string, m *topicMatcher) error {
	if expr == "" {
		expr = "^$" // as RabbitMQ: the empty expression allows only the empty key
	}
	m.expr = expr
	if !hasTopicVars(expr) {
		sm, err := compileMatcher(kind, expr)
		if err != nil {
			return fmt.Errorf("%w: topic %s regular expression %q on exchange %q: %v",
				ErrInvalidPermission, kind, expr, exchange, err)
		}
		m.static = sm
		return nil
	}
	// The values are only known at check time. They are quoted, so they
	// are literals: check the syntax with a literal in their place.
	probe := expr
	for _, v := range topicVarNames {
		probe = strings.ReplaceAll(probe, v, "x")
	}
	if _, err := regexp.Compile(probe); err != nil {
		return fmt.Errorf("%w: topic %s regular expression %q on exchange %q: %v",
			ErrInvalidPermission, kind, expr, exchange, err)
	}
	m.vars = true
	return nil
}

// match reports whether key matches the expression expanded for user, vhost
// and v. An expansion that does not compile matches nothing.
func (m *topicMatcher) match(key, user, vhost string, v TopicVars) bool {
	if !m.vars {
		return m.static.match(key)
	}
	expr := expandTopic(m.expr, user, vhost, v.ClientID)
	m.mu.Lock()
	re, ok := m.cache[expr]
	m.mu.Unlock()
	if !ok {
		re, _ = regexp.Compile(expr) // nil if it does not compile: deny
		m.mu.Lock()
		if m.cache == nil || len(m.cache) >= maxTopicCache {
			m.cache = make(map[string]*regexp.Regexp)
		}
		m.cache[expr] = re
		m.mu.Unlock()
	}
	return re != nil && re.MatchString(key)
}

// SetTopicPermission sets the topic permission of user on exchange
// p.Exchange in vhost, replacing any previous one for that exchange. It
// fails with an error wrapping [ErrInvalidPermission], naming the kind and
// the expression, if an expression does not compile (expressions with
// variables are checked with a literal in place of each variable) or the
// exchange name is empty, and with [ErrNoSuchUser] if the user does not
// exist. It checks neither that the vhost or the exchange exist nor that the
// exchange is a topic exchange.
func (s *Store) SetTopicPermission(user, vhost string, p TopicPermission) error {
	tp, err := compileTopicPermission(p)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a := s.lookup(user)
	if a == nil {
		return fmt.Errorf("%w: %q", ErrNoSuchUser, user)
	}
	topics := make(map[topicKey]*topicPermission, len(a.topics)+1)
	for k, v := range a.topics {
		topics[k] = v
	}
	topics[topicKey{vhost, p.Exchange}] = tp
	na := *a
	na.topics = topics
	return s.commitLocked(user, &na)
}

func compileTopicPermission(p TopicPermission) (*topicPermission, error) {
	if p.Exchange == "" {
		return nil, fmt.Errorf("%w: topic permission without an exchange", ErrInvalidPermission)
	}
	tp := &topicPermission{p: p}
	for i, expr := range [2]string{p.Write, p.Read} {
		if err := compileTopicMatcher(Write+Access(i), p.Exchange, expr, &tp.matcher[i]); err != nil {
			return nil, err
		}
	}
	return tp, nil
}

// ClearTopicPermission removes the topic permission of user on exchange in
// vhost, or all of the user's topic permissions in vhost when exchange is
// "". Clearing permissions that are not set is not an error.
func (s *Store) ClearTopicPermission(user, vhost, exchange string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a := s.lookup(user)
	if a == nil {
		return fmt.Errorf("%w: %q", ErrNoSuchUser, user)
	}
	var topics map[topicKey]*topicPermission
	removed := 0
	for k, v := range a.topics {
		if k.vhost == vhost && (exchange == "" || k.exchange == exchange) {
			removed++
			continue
		}
		if topics == nil {
			topics = make(map[topicKey]*topicPermission, len(a.topics))
		}
		topics[k] = v
	}
	if removed == 0 {
		return nil
	}
	na := *a
	na.topics = topics // nil when none are left: CheckTopic's fast path
	return s.commitLocked(user, &na)
}

// TopicPermissions returns the topic permissions of user in vhost, as they
// were set, sorted by exchange.
func (s *Store) TopicPermissions(user, vhost string) []TopicPermission {
	var out []TopicPermission
	if a, ok := s.accounts()[user]; ok {
		for k, tp := range a.topics {
			if k.vhost == vhost {
				out = append(out, tp.p)
			}
		}
	}
	slices.SortFunc(out, func(a, b TopicPermission) int { return strings.Compare(a.Exchange, b.Exchange) })
	return out
}

// CheckTopic reports whether user may have access kind (Write or Read) to
// routingKey on the topic exchange named exchange in vhost. Without a topic
// permission for that user, vhost and exchange everything is allowed, as in
// RabbitMQ; any other kind of access is refused. {username} and {vhost}
// expand to user and vhost, {client_id} to v.ClientID. CheckTopic allocates
// nothing unless the expression has variables; when no user has topic
// permissions it reads no map.
func (s *Store) CheckTopic(user, vhost string, kind Access, exchange, routingKey string, v TopicVars) bool {
	if kind != Write && kind != Read {
		return false
	}
	if s.topicCount.Load() == 0 {
		return true
	}
	var tp *topicPermission
	if a, ok := s.accounts()[user]; ok && a.topics != nil {
		tp = a.topics[topicKey{vhost, exchange}]
	}
	if tp == nil {
		return true
	}
	return tp.matcher[kind-Write].match(routingKey, user, vhost, v)
}

// HasTopicPermissions reports whether any user has a topic permission, so
// that an adapter can skip building routing keys for CheckTopic when none
// is set.
func (s *Store) HasTopicPermissions() bool { return s.topicCount.Load() > 0 }
