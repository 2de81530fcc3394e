package mqtt

import (
	"strings"
	"sync"
	"time"
)

// retainIndex holds the retained messages of every vhost: one trie of topic
// levels per vhost, so a wildcard subscription visits only the branches its
// filter can match. Writes go to the Store first, so a PUBACK for a retained
// message means it survives a restart.
type retainIndex struct {
	store Store

	// wmu orders writers, so the stored and the in-memory message of a
	// topic change together; it is taken before mu.
	wmu sync.Mutex

	mu     sync.RWMutex
	vhosts map[string]*retainNode // REQUIRES: mu
	count  int                    // REQUIRES: mu
}

type retainNode struct {
	children map[string]*retainNode
	msg      *retainedMsg
}

func newRetainIndex(store Store) *retainIndex {
	return &retainIndex{store: store, vhosts: make(map[string]*retainNode)}
}

// load adds a stored message without writing it back.
func (x *retainIndex) load(vhost string, m *retainedMsg) {
	x.mu.Lock()
	x.setLocked(vhost, m.topic, m)
	x.mu.Unlock()
}

// set stores m as the retained message of its topic, or deletes the
// topic's retained message when m has an empty payload [MQTT-3.3.1-6].
func (x *retainIndex) set(vhost string, m *retainedMsg) error {
	key := storeKey(kindRetained, vhost, m.topic)
	x.wmu.Lock()
	defer x.wmu.Unlock()
	if len(m.payload) == 0 {
		x.mu.RLock()
		had := x.lookupLocked(vhost, m.topic) != nil
		x.mu.RUnlock()
		if !had {
			return nil
		}
		// The stored copy goes first: if it stays, so does the one in
		// memory, and a restart brings back nothing the client was not
		// told about.
		if err := x.store.Delete(key); err != nil {
			return err
		}
		x.mu.Lock()
		x.setLocked(vhost, m.topic, nil)
		x.mu.Unlock()
		return nil
	}
	if err := x.store.Put(key, m.encode()); err != nil {
		return err
	}
	x.mu.Lock()
	x.setLocked(vhost, m.topic, m)
	x.mu.Unlock()
	return nil
}

// setLocked replaces the message at topic (nil removes it) and reports
// whether there was one. REQUIRES: x.mu held for writing.
func (x *retainIndex) setLocked(vhost, topic string, m *retainedMsg) bool {
	root := x.vhosts[vhost]
	if root == nil {
		if m == nil {
			return false
		}
		root = &retainNode{}
		x.vhosts[vhost] = root
	}
	path := []*retainNode{root}
	n := root
	rest := topic
	for {
		level, r, more := cutLevel(rest)
		child := n.children[level]
		if child == nil {
			if m == nil {
				return false
			}
			if n.children == nil {
				n.children = make(map[string]*retainNode)
			}
			child = &retainNode{}
			n.children[level] = child
		}
		n = child
		path = append(path, n)
		if !more {
			break
		}
		rest = r
	}
	had := n.msg != nil
	n.msg = m
	switch {
	case had && m == nil:
		x.count--
	case !had && m != nil:
		x.count++
	}
	if m == nil {
		x.prune(path, topic)
	}
	return had
}

// prune removes empty nodes at the end of path, the nodes along topic.
func (x *retainIndex) prune(path []*retainNode, topic string) {
	levels := strings.Split(topic, "/")
	for i := len(path) - 1; i > 0; i-- {
		n := path[i]
		if n.msg != nil || len(n.children) > 0 {
			return
		}
		delete(path[i-1].children, levels[i-1])
	}
}

// match returns the live retained messages whose topics match filter,
// dropping expired ones it meets.
func (x *retainIndex) match(vhost, filter string, now time.Time) []*retainedMsg {
	x.mu.RLock()
	root := x.vhosts[vhost]
	var out []*retainedMsg
	if root != nil && x.count > 0 {
		out = collect(root, filter, true, out)
	}
	x.mu.RUnlock()
	live := out[:0]
	var expired []*retainedMsg
	for _, m := range out {
		if m.expired(now) {
			expired = append(expired, m)
			continue
		}
		live = append(live, m)
	}
	for _, m := range expired {
		x.expire(vhost, m)
	}
	return live
}

// expire deletes m if it is still the retained message of its topic.
func (x *retainIndex) expire(vhost string, m *retainedMsg) {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	x.mu.RLock()
	cur := x.lookupLocked(vhost, m.topic)
	x.mu.RUnlock()
	if cur != m {
		return
	}
	if err := x.store.Delete(storeKey(kindRetained, vhost, m.topic)); err != nil {
		// Kept, and tried again at the next match; match skips it meanwhile.
		return
	}
	x.mu.Lock()
	x.setLocked(vhost, m.topic, nil)
	x.mu.Unlock()
}

// REQUIRES: x.mu.
func (x *retainIndex) lookupLocked(vhost, topic string) *retainedMsg {
	n := x.vhosts[vhost]
	rest := topic
	for n != nil {
		level, r, more := cutLevel(rest)
		n = n.children[level]
		if !more {
			break
		}
		rest = r
	}
	if n == nil {
		return nil
	}
	return n.msg
}

// collect appends the messages under n matching filter. top is true at the
// first level, where wildcards do not match topics starting with '$'.
func collect(n *retainNode, filter string, top bool, out []*retainedMsg) []*retainedMsg {
	level, rest, more := cutLevel(filter)
	switch level {
	case "#":
		if !top && n.msg != nil {
			out = append(out, n.msg) // "a/#" matches "a"
		}
		return collectAll(n, top, out)
	case "+":
		for name, c := range n.children {
			if top && strings.HasPrefix(name, "$") {
				continue
			}
			out = collectNext(c, rest, more, out)
		}
		return out
	}
	if c := n.children[level]; c != nil {
		out = collectNext(c, rest, more, out)
	}
	return out
}

func collectNext(c *retainNode, rest string, more bool, out []*retainedMsg) []*retainedMsg {
	if !more {
		if c.msg != nil {
			out = append(out, c.msg)
		}
		return out
	}
	return collect(c, rest, false, out)
}

// collectAll appends every message below n.
func collectAll(n *retainNode, top bool, out []*retainedMsg) []*retainedMsg {
	for name, c := range n.children {
		if top && strings.HasPrefix(name, "$") {
			continue
		}
		if c.msg != nil {
			out = append(out, c.msg)
		}
		out = collectAll(c, false, out)
	}
	return out
}

// size returns the number of retained messages.
func (x *retainIndex) size() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.count
}
