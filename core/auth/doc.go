// Package auth holds the broker's users, their password hashes and their
// per-vhost permissions, with RabbitMQ's semantics so that definitions
// exported from RabbitMQ import unchanged.
//
// # Concurrency and locks
//
// A [Store] is safe for concurrent use. It has one sync.RWMutex, mu, which
// guards every user and permission. Read paths ([Store.Authenticate],
// [Store.Check], [Store.CanAccessVhost], lookups) hold it for reading only
// and never block each other; writes (Put, Delete, Set, Clear) hold it for
// writing, briefly, to install what they computed. No method calls out while
// holding mu. Writes are serialized by a second mutex, wmu, taken before mu
// and held while the [Persister], if any, stores the change; so the lock
// order is wmu, then the Persister's own locks, and a Persister must not
// change the Store. Readers never take wmu, so a slow Persister delays only
// other writes. A user's record and its compiled permissions are
// copy-on-write: a write replaces them and never changes them in place, so a
// reader may keep using what it fetched under the read lock after releasing
// it. Password hashing and comparison and regular-expression matching run
// outside the lock. The one mutable part of a compiled permission, the
// cache of expanded topic expressions ([Store.CheckTopic]), has its own
// mutex, a leaf taken without mu held. A count of topic permissions, kept
// in an atomic, lets CheckTopic skip mu altogether while no user has any.
// Values returned to callers ([*User], [Permission]) are copies; changing
// them does not change the Store.
//
// # Persistence
//
// The Store keeps no files. A program that wants accounts to survive a
// restart loads them with [Store.PutAccount] and then sets a [Persister],
// which receives every later change, one whole [Account] at a time, before
// the change is made; a change the Persister refuses is not made.
//
// # Passwords
//
// Hashes use RabbitMQ's format: four random bytes of salt followed by the
// digest of salt || UTF-8 password. New passwords use SHA-256
// (rabbit_password_hashing_sha256, RabbitMQ's default); imported hashes may
// also be SHA-512 or legacy MD5, told apart by their length. A user with no
// password hash cannot log in with a password, and, as in RabbitMQ, an empty
// password never authenticates. Unknown users and wrong passwords give the
// same [ErrInvalidCredentials] after the same amount of work. The loopback
// restriction ([ErrLoopbackOnly]) is checked only once the password is
// right, as RabbitMQ does, so it reveals nothing to a caller without it.
//
// # Permissions
//
// A [Permission] holds three regular expressions, for configure, write and
// read access to the resources of one vhost. As in RabbitMQ
// (rabbit_auth_backend_internal), a resource is allowed when its name
// matches anywhere in the expression (unanchored search: "amq" allows
// "my.amq.q"; write "^...$" to anchor), and the empty expression means "^$",
// which allows nothing. Expressions use Go's RE2 syntax rather than PCRE: no
// back-references or look-around, and "$" matches only at the very end.
// A user may use a vhost when it has a permission entry for it, even one
// that allows nothing ([Store.CanAccessVhost]).
//
// # Resource names the adapters pass to Check
//
// [Store.Check] takes the plain name of an exchange or queue in the vhost.
// The default exchange is named "" on the wire but "amq.default" for
// permissions; Check maps "" to "amq.default" itself, because no other
// resource has an empty name and "^$" must not grant the default exchange.
// Server-named queues are checked under the generated name ("amq.gen-...")
// once it is chosen; like current RabbitMQ releases there is no exemption for
// them, so a restricted user needs, for example,
// "^(amq\.gen.*|amq\.default)$". The checks per AMQP 0-9-1 method follow
// RabbitMQ's table:
//
//	method                          configure     write              read
//	exchange.declare (not passive)  exchange
//	  with alternate-exchange       exchange      alternate exch.    exchange
//	exchange.delete                 exchange
//	queue.declare (not passive)     queue
//	  with x-dead-letter-exchange   queue         dead-letter exch.  queue
//	queue.delete                    queue
//	exchange.bind / unbind                        destination exch.  source exch.
//	queue.bind / unbind                           queue              exchange
//	basic.publish                                 exchange
//	basic.get / basic.consume                                        queue
//	queue.purge                                                      queue
//
// Passive declarations check nothing. Other protocols map their operations
// onto these: an MQTT or STOMP publish is a basic.publish to its exchange, a
// subscription is a queue.declare, a queue.bind and a basic.consume.
//
// # Topic permissions
//
// A [TopicPermission] (rabbitmqctl set_topic_permissions) narrows what a
// user may do on one topic exchange of a vhost by routing key, on top of the
// permissions above. Its write expression is matched against the routing key
// of each publish to the exchange, its read expression against the binding
// key of a queue.bind, queue.unbind, exchange.bind or exchange.unbind whose
// source is the exchange, and of MQTT and STOMP subscriptions to it. As in
// RabbitMQ (rabbit_auth_backend_internal:check_topic_access):
//   - a user with no topic permission for an exchange may use every routing
//     key on it;
//   - matching is an unanchored search, and "" means "^$", which allows only
//     the empty key;
//   - "{username}", "{vhost}" and, for MQTT, "{client_id}" are replaced by
//     their values at check time; a variable without a value (client_id
//     outside MQTT) stays as written.
//
// Unlike RabbitMQ, the values are regexp-quoted before substitution, so a
// user named "a.b" with "^{username}\." matches "a.b.x" but not "aXb.x".
// Topic authorisation applies only to exchanges of type topic; the adapters
// call [Store.CheckTopic] only for those.
package auth
