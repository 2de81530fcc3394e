package route

import "sync"

// Direct is the binding table of a direct exchange: a message goes to every
// destination bound with a key equal to its routing key. The zero value is
// not usable; call [NewDirect]. A Direct is safe for concurrent use.
type Direct[D comparable] struct {
	mu sync.RWMutex
	// keys maps a binding key to its destinations, in no particular order.
	keys map[string][]D
	// pos maps a binding to its index in keys[key], so Add and Remove are
	// O(1) however many destinations share a key.
	pos map[binding[D]]int
}

// binding identifies one (key, destination) pair.
type binding[D comparable] struct {
	key string
	d   D
}

// NewDirect returns an empty direct table.
func NewDirect[D comparable]() *Direct[D] {
	return &Direct[D]{keys: make(map[string][]D), pos: make(map[binding[D]]int)}
}

// Add binds d with key. It returns false, and changes nothing, if that pair
// is already bound.
func (t *Direct[D]) Add(key string, d D) bool {
	b := binding[D]{key, d}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.pos[b]; ok {
		return false
	}
	list := t.keys[key]
	t.pos[b] = len(list)
	t.keys[key] = append(list, d)
	return true
}

// Remove unbinds d from key. It returns false if that pair was not bound.
func (t *Direct[D]) Remove(key string, d D) bool {
	b := binding[D]{key, d}
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.pos[b]
	if !ok {
		return false
	}
	delete(t.pos, b)
	list := t.keys[key]
	last := len(list) - 1
	if i != last {
		list[i] = list[last]
		t.pos[binding[D]{key, list[i]}] = i
	}
	var zero D
	list[last] = zero
	if last == 0 {
		delete(t.keys, key)
	} else {
		t.keys[key] = list[:last]
	}
	return true
}

// Match appends to out every destination bound with key and returns the
// extended slice. Each destination appears once. It allocates nothing when
// out has enough spare capacity.
func (t *Direct[D]) Match(key string, out []D) []D {
	t.mu.RLock()
	out = append(out, t.keys[key]...)
	t.mu.RUnlock()
	return out
}

// Any reports whether a destination is bound with key.
func (t *Direct[D]) Any(key string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.keys[key]) > 0
}

// Len returns the number of bindings.
func (t *Direct[D]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.pos)
}
