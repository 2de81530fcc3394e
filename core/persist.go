package core

import (
	"fmt"

	"github.com/unifiedms/ums/internal/clock"
	"log/slog"
	"strings"
	"time"
)

// MessageStore keeps persistent messages of durable queues. A record has one
// part per durable queue holding the message; a part is released when its
// queue is done with the message. Implementations must call done exactly
// once, after the record is durable (nil) or failed (an error), and must
// keep appends and releases in one order, so a done(nil) also covers every
// release issued before the append.
type MessageStore interface {
	Append(data []byte, parts int, done func(error)) uint64
	Release(id uint64, part int)
	// Read returns the data of a live record (to page a message back in).
	Read(id uint64) ([]byte, error)
}

// MetaStore keeps definitions: durable exchanges, queues and bindings.
// Put and Delete are durable when they return.
type MetaStore interface {
	Put(key string, val []byte) error
	Delete(key string) error
	All() map[string][]byte
}

// Options configure a broker.
type Options struct {
	Messages MessageStore // nil: nothing survives a restart
	Meta     MetaStore    // nil: definitions are not stored
	Logger   *slog.Logger
	// Clock gives the time to expiry (TTL, x-expires), sweeps, retries and
	// scheduling; nil is the system clock. Tests pass a clock.Fake.
	Clock clock.Clock
	// PageAfter is how many ready messages a durable queue keeps in memory;
	// the bodies of stored messages behind them stay on disk until they
	// near the head. 0 keeps everything in memory.
	PageAfter int

	// Node limits (see limits.go); 0 is none.
	MaxConnectionsPerUser int           // client connections per user, over all protocols
	MaxConsumersPerQueue  int           // consumers of client connections per queue
	LoginFailureDelay     time.Duration // how long a failed login waits for its answer
}

// NewBrokerWith returns a broker that stores through o. Call Recover before
// serving clients.
func NewBrokerWith(o Options) *Broker {
	b := &Broker{vhosts: make(map[string]*Vhost), conns: make(map[*Conn]struct{}), userConns: make(map[string]int),
		maxUserConns: o.MaxConnectionsPerUser, maxConsumers: o.MaxConsumersPerQueue, loginDelay: o.LoginFailureDelay,
		msgs: o.Messages, meta: o.Meta, log: o.Logger, pageAfter: o.PageAfter,
		clock: clock.Or(o.Clock)}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.flow.init()
	b.AddVhost("/")
	return b
}

// Meta keys: kind byte, then NUL-separated fields.
func metaKey(parts ...string) string { return strings.Join(parts, "\x00") }

// putMeta stores a definition. A failure is returned as an ErrInternal
// error and raises the "definitions" alarm: the caller fails its operation
// and leaves memory as it was.
func (b *Broker) putMeta(val []byte, parts ...string) error {
	if b.meta == nil {
		return nil
	}
	if err := b.meta.Put(metaKey(parts...), val); err != nil {
		return b.definitionFailed("storing", parts, err)
	}
	return nil
}

// deleteMeta removes a definition; failures are handled as in putMeta.
func (b *Broker) deleteMeta(parts ...string) error {
	if b.meta == nil {
		return nil
	}
	if err := b.meta.Delete(metaKey(parts...)); err != nil {
		return b.definitionFailed("deleting", parts, err)
	}
	return nil
}

// AlarmDefinitions is raised when the definition store fails a write:
// declarations and deletions of durable entities fail until it is fixed
// (the store refuses further writes after a failed one, until a restart).
const AlarmDefinitions = "definitions"

func (b *Broker) definitionFailed(op string, parts []string, err error) error {
	key := strings.Join(parts, "/")
	b.log.Error(op+" a definition failed; the operation is refused", "key", key, "err", err)
	b.SetFault(AlarmDefinitions, fmt.Sprintf("definition store failed %s %s: %v", op, key, err), true)
	return errorf(ErrInternal, "cannot store the definition change: %v", err)
}

func flagsByte(flags ...bool) byte {
	var f byte
	for i, v := range flags {
		if v {
			f |= 1 << i
		}
	}
	return f
}

// persistExchange stores a durable exchange. REQUIRES: v.defMu, not v.mu.
func (v *Vhost) persistExchange(x *Exchange) error {
	if !x.Durable {
		return nil
	}
	e := encoder{}
	e.str(x.Kind)
	e.b = append(e.b, flagsByte(x.AutoDelete, x.Internal))
	e.table(x.Args)
	return v.broker.putMeta(e.b, "x", v.Name, x.Name)
}

// unpersistExchange removes a durable exchange's record. REQUIRES: v.defMu, not v.mu.
func (v *Vhost) unpersistExchange(x *Exchange) error {
	if x.Durable {
		return v.broker.deleteMeta("x", v.Name, x.Name)
	}
	return nil
}

func (q *Queue) persistent() bool { return q.Durable && !q.Exclusive }

// persistQueue stores a durable queue. REQUIRES: v.defMu, not v.mu.
func (v *Vhost) persistQueue(q *Queue) error {
	return v.persistQueueDef(q.Name, q.QueueOptions)
}

// persistQueueDef stores the definition of a durable queue. REQUIRES: v.defMu, not v.mu.
func (v *Vhost) persistQueueDef(name string, o QueueOptions) error {
	if !o.Durable || o.Exclusive {
		return nil
	}
	e := encoder{}
	e.b = append(e.b, flagsByte(o.AutoDelete, o.Internal, o.ReportBindings))
	e.table(o.Args)
	return v.broker.putMeta(e.b, "q", v.Name, name)
}

// unpersistQueue removes a durable queue's record. REQUIRES: v.defMu, not v.mu.
func (v *Vhost) unpersistQueue(q *Queue) error {
	if q.persistent() {
		return v.broker.deleteMeta("q", v.Name, q.Name)
	}
	return nil
}

func (b *binding) durable() bool {
	if !b.src.Durable {
		return false
	}
	if b.dst.q != nil {
		return b.dst.q.persistent()
	}
	return b.dst.x.Durable
}

func (b *binding) metaParts(v *Vhost) []string {
	kind := "q"
	if b.dst.x != nil {
		kind = "x"
	}
	return []string{"b", v.Name, b.src.Name, kind, b.dst.name(), b.key, b.id}
}

// persistBinding stores a durable binding. REQUIRES: v.defMu, not v.mu.
func (v *Vhost) persistBinding(b *binding) error {
	if b.durable() {
		return v.broker.putMeta(encodeTable(b.args), b.metaParts(v)...)
	}
	return nil
}

// unpersistBinding removes a durable binding's record. REQUIRES: v.defMu, not v.mu.
func (v *Vhost) unpersistBinding(b *binding) error {
	if b.durable() {
		return v.broker.deleteMeta(b.metaParts(v)...)
	}
	return nil
}

// laterDelete notes the record of a durable entity that a change removed
// along with the one it was asked for (the bindings of a deleted queue, an
// auto-deleted exchange): it is deleted by flushLater once v.mu is
// released. REQUIRES: v.defMu and v.mu.
func (v *Vhost) laterDelete(durable bool, parts ...string) {
	if durable && v.broker.meta != nil {
		v.later = append(v.later, parts)
	}
}

// flushLater deletes the records noted by laterDelete. The change they
// belong to is already made durable by its own record, so a failure here
// (which raises the definitions alarm) at worst brings back a binding or
// an auto-delete exchange after a restart; recovery drops bindings whose
// queue or exchange is gone. REQUIRES: v.defMu, not v.mu.
func (v *Vhost) flushLater() {
	for _, parts := range v.later {
		v.broker.deleteMeta(parts...)
	}
	clear(v.later)
	v.later = v.later[:0]
	if len(v.laterRelease) > 0 && v.broker.msgs != nil {
		if br, ok := v.broker.msgs.(batchReleaser); ok {
			br.ReleaseAll(v.laterRelease, 0)
		} else {
			for _, sid := range v.laterRelease {
				v.broker.msgs.Release(sid, 0)
			}
		}
	}
	v.laterRelease = nil
}

// release tells the store a queue is done with a stored entry.
func (q *Queue) release(e *entry) {
	if e.stored {
		q.vhost.broker.msgs.Release(e.sid, int(e.part))
		e.stored = false
	}
}

// RecoveryStats summarises what Recover restored.
type RecoveryStats struct {
	Exchanges, Queues, Bindings int
	Messages                    int // queue entries restored
	Scheduled                   int // scheduled messages restored
	Dropped                     int // stored parts whose queue no longer exists
	Duration                    time.Duration
}

// Recover restores definitions from the meta store and messages through
// replay, which must call fn once per live stored record (the message
// store's replay). It must run before clients connect.
func (b *Broker) Recover(replay func(fn func(id uint64, live []int, data []byte) error) error) (RecoveryStats, error) {
	start := time.Now()
	var st RecoveryStats
	// Scheduled messages are put back first and their timers armed at the
	// end, so none is routed while queues are still being restored.
	b.recovering.Store(true)
	defer b.startSchedulers()
	if b.meta != nil {
		if err := b.recoverMeta(&st); err != nil {
			return st, err
		}
	}
	if replay != nil {
		now := b.clock.Now()
		err := replay(func(id uint64, live []int, data []byte) error {
			rec, err := decodeStored(data)
			if err != nil {
				b.log.Error("skipping unreadable stored message", "id", id, "err", err)
				for _, p := range live {
					b.msgs.Release(id, p)
				}
				return nil
			}
			vname, msg, queues := rec.vhost, rec.msg, rec.queues
			v, _ := b.Vhost(vname)
			if rec.due != 0 {
				// A scheduled message: back to its exchange with its due time.
				var x *Exchange
				if v != nil {
					x = v.lookupExchange(rec.target)
				}
				if x == nil || !x.Durable {
					for _, p := range live {
						b.msgs.Release(id, p)
					}
					st.Dropped++
					return nil
				}
				x.scheduler().restore(rec.due, id)
				st.Scheduled++
				return nil
			}
			for _, p := range live {
				var q *Queue
				if v != nil && p < len(queues) {
					q = v.anyQueue(queues[p])
				}
				if q == nil || !q.persistent() {
					b.msgs.Release(id, p)
					st.Dropped++
					continue
				}
				q.restore(msg, id, p, now)
				st.Messages++
			}
			return nil
		})
		if err != nil {
			return st, err
		}
	}
	st.Duration = time.Since(start)
	return st, nil
}

// startSchedulers ends recovery: the schedulers' timers are armed.
func (b *Broker) startSchedulers() {
	b.recovering.Store(false)
	for _, v := range b.Vhosts() {
		for _, x := range v.Exchanges() {
			if s := x.sched.Load(); s != nil {
				s.start()
			}
		}
	}
}

func (b *Broker) recoverMeta(st *RecoveryStats) error {
	all := b.meta.All()
	// Exchanges and queues first, then bindings between them.
	for pass := 0; pass < 2; pass++ {
		for key, val := range all {
			f := strings.Split(key, "\x00")
			if len(f) < 3 || (f[0] != "x" && f[0] != "q" && f[0] != "b") {
				continue // not a core definition (adapters keep their own keys here)
			}
			v := b.AddVhost(f[1])
			d := decoder{b: val}
			switch {
			case pass == 0 && f[0] == "x" && len(f) == 3:
				kind := d.str()
				fl := d.fixed(1)
				args := d.table(0)
				if d.err != nil || !ValidKind(kind) {
					b.log.Error("skipping unreadable exchange definition", "exchange", f[2])
					continue
				}
				if kind == KindDelayed {
					if _, err := delayedType(f[1], f[2], args); err != nil {
						b.log.Error("skipping exchange definition", "exchange", f[2], "err", err)
						continue
					}
				}
				v.mu.Lock()
				if _, ok := v.exchanges[f[2]]; !ok {
					v.putExchangeLocked(newExchange(v, f[2], kind, ExchangeOptions{Durable: true,
						AutoDelete: fl[0]&1 != 0, Internal: fl[0]&2 != 0, Args: args}))
					st.Exchanges++
				}
				v.mu.Unlock()
			case pass == 0 && f[0] == "q" && len(f) == 3:
				fl := d.fixed(1)
				args := d.table(0)
				if d.err != nil {
					b.log.Error("skipping unreadable queue definition", "queue", f[2])
					continue
				}
				opts := QueueOptions{Durable: true, AutoDelete: fl[0]&1 != 0, Internal: fl[0]&2 != 0, ReportBindings: fl[0]&4 != 0, Args: args}
				qa, err := parseQueueArgs(v, f[2], args)
				if err != nil {
					b.log.Error("skipping queue definition", "queue", f[2], "err", err)
					continue
				}
				v.mu.Lock()
				_, ok := v.queues[f[2]]
				var q *Queue
				if !ok {
					q = newQueue(v, f[2], opts, qa)
					v.putQueueLocked(q)
					st.Queues++
				}
				v.mu.Unlock()
				if q != nil {
					q.startTimers()
				}
			case pass == 1 && f[0] == "b" && len(f) == 7:
				args, err := decodeTable(val)
				if err != nil {
					b.log.Error("skipping unreadable binding definition", "source", f[2])
					continue
				}
				var bindErr error
				if f[3] == "x" {
					bindErr = v.bind(nil, f[4], true, f[2], f[5], args, false)
				} else {
					bindErr = v.bind(nil, f[4], false, f[2], f[5], args, false)
				}
				if bindErr != nil {
					b.log.Warn("dropping stored binding", "source", f[2], "destination", f[4], "err", bindErr)
					continue
				}
				st.Bindings++
			}
		}
	}
	return nil
}

// restore puts a recovered message back; it may have been delivered before
// the restart, so it is marked redelivered.
func (q *Queue) restore(msg *Message, id uint64, part int, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	// Expiry restarts from the recovery: the publish time is not stored.
	e := q.newEntry(msg, now)
	e.seq, e.sid, e.part, e.stored, e.redelivered = q.seq, id, int32(part), true, true
	q.pushBackLocked(e)
}
