// Package route holds the binding tables that exchanges consult on the
// per-message path: [Direct] (exact routing key), [Topic] (RabbitMQ topic
// patterns with '*' and '#') and [Headers] (RabbitMQ headers-exchange
// arguments). The tables are generic over the destination type, which must be
// comparable; the core uses small structs or pointers naming queues and
// exchanges. Match methods append to a caller-owned slice and allocate
// nothing when it has room, except on a [Topic] cache miss.
//
// # Concurrency and locks
//
// Every table is safe for concurrent use: any number of goroutines may call
// Match while others call Add or Remove. Each table has its own locks and
// never calls out while holding them, so there is no lock order to respect
// between tables or with the caller's locks.
//
//   - [Direct] and [Headers]: one sync.RWMutex, mu. Match holds it for
//     reading; Add and Remove hold it for writing.
//   - [Topic]: two sync.RWMutexes, taken in the order mu -> cacheMu and
//     never the other way. mu guards the trie and the binding index; cacheMu
//     guards the match cache. A cache hit takes only cacheMu for reading, so
//     concurrent hits never exclude each other. A miss holds mu for reading
//     while it walks the trie and then takes cacheMu for writing just to
//     insert the result; because mu is still held, no Add or Remove can run in
//     between, so a cached result always reflects the trie as it was when it
//     was computed. Add and Remove hold mu for writing and clear the cache
//     (under cacheMu) before they release mu.
//
// Match never hands out internal slices: results are copied into the
// caller's slice, which the caller may keep and modify.
//
// # Topic semantics
//
// Routing keys and patterns are split on '.' exactly as RabbitMQ's
// split_topic_key does: the empty string is zero words, and every '.' ends a
// word, so "a..b" is the three words "a", "", "b", "a." is "a", "" and "." is
// "", "". In a pattern a word that is exactly "*" matches one word (which
// may be empty) and a word that is exactly "#" matches zero or more words;
// any other word, including "a*" or "#b", is literal. Consequently:
//
//   - "#" matches every key, including "".
//   - The pattern "" matches only the key "" (and "#" or "#.#" match it
//     too). No key is a single empty word, so "*" never matches "", while
//     "a.*" matches "a." and "*.*" matches ".".
//   - "a.#" matches "a", "a.b" and "a.b.c"; "a.#.b" matches "a.b" and
//     "a.x.y.b"; "#.#" behaves like "#".
//
// A destination bound by several matching patterns is returned once.
//
// # Headers semantics
//
// [HeadersMatch] follows RabbitMQ 3.13's rabbit_exchange_type_headers. See
// its documentation for the rules on x-match, x- keys, void (nil) values and
// how values compare.
package route
