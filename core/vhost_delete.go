package core

// DeleteVhost deletes the named virtual host with everything in it, as
// RabbitMQ's delete_vhost does: its client connections are closed with
// reason, its queues are deleted with their messages (internal ones too),
// its exchanges with their bindings and scheduled messages, and their
// durable records with them. Then the hooks given to OnVhostDeleted run.
//
// The vhost leaves the broker's list first, so nothing finds it by name
// while it is taken apart. When deleting a durable record fails, the rest
// is still deleted and the first error is returned: the objects whose
// records could not be deleted come back after a restart.
func (b *Broker) DeleteVhost(name, reason string) error {
	b.mu.Lock()
	v, ok := b.vhosts[name]
	if ok {
		delete(b.vhosts, name)
	}
	b.mu.Unlock()
	if !ok {
		return errorf(ErrNotFound, "no vhost '%s'", name)
	}
	for _, c := range b.Connections() {
		if c.vhost == v {
			c.Kill(reason)
		}
	}
	var first error
	v.mu.RLock()
	queues := make([]*Queue, 0, len(v.queues))
	for _, q := range v.queues {
		queues = append(queues, q)
	}
	v.mu.RUnlock()
	for _, q := range queues {
		if _, err := v.deleteQueue(q, nil); err != nil && first == nil {
			first = err
		}
	}
	for _, x := range v.Exchanges() {
		v.defMu.Lock()
		err := v.unpersistExchange(x)
		if err == nil {
			v.mu.Lock()
			v.deleteExchangeLocked(x, false)
			v.mu.Unlock()
		} else if first == nil {
			first = err
		}
		v.defMu.Unlock()
	}
	v.flushLater()
	b.hookMu.Lock()
	hooks := append([]func(*Vhost){}, b.vhostDeletedHooks...)
	b.hookMu.Unlock()
	for _, fn := range hooks {
		fn(v)
	}
	return first
}

// OnVhostDeleted calls fn after a vhost was deleted (with no core lock
// held), so in-process services drop what they kept for it.
func (b *Broker) OnVhostDeleted(fn func(*Vhost)) {
	b.hookMu.Lock()
	b.vhostDeletedHooks = append(b.vhostDeletedHooks, fn)
	b.hookMu.Unlock()
}
