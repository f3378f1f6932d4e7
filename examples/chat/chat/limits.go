package chat

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// DefaultAddrConns and DefaultAddrJoinRate are how many members one
	// address may have at once, and how many joins it may make a second
	// (with bursts of ten seconds' worth), unless Options say otherwise:
	// a client that joins and leaves in a loop costs every member of the
	// room a join and a leave each time, and one that opens many
	// connections says as much as all of them.
	DefaultAddrConns    = 32
	DefaultAddrJoinRate = 1
	// DefaultSiteAddrs is how many addresses' worth of their limits the
	// members from one IPv6 /48 have together unless Options say
	// otherwise: a home or an office given a /48 uses a few of its /64s,
	// and eight addresses' worth (256 members, joins at 8 a second)
	// leaves it more than the hosts behind one IPv4 address share, while
	// a host holding all 65,536 of them gets no more.
	DefaultSiteAddrs = 8
	// addrRateFactor is how many members' worth of MessageRate and
	// ByteRate the members from one address may say together unless
	// Options say otherwise.
	addrRateFactor = 4
	// joinBurst is how many seconds' worth of joins an address may make
	// at once: a browser restoring its tabs, or a household's members
	// coming back after a restart of the server.
	joinBurst = 10
	// maxAddrs bounds the addresses and sites without members a server
	// keeps limits for; those with members are bounded by its
	// connections.
	maxAddrs = 1 << 16
)

// addrKey returns what r's limits are counted under: the client's IP
// address, an IPv6 address cut to its /64, and an IPv4-mapped one taken
// as IPv4. header, if not "", names a header set by a proxy in front of
// the server: its last entry, the one the proxy added, is the client's
// address (proxyIP); a request whose header has none has the address
// it came from. A request from the server's own host, a loopback
// address or a transport without addresses (a Unix socket), gets the
// zero key, which has no limits (limited).
func addrKey(r *http.Request, header string) netip.Prefix {
	var ip netip.Addr
	if vs := r.Header.Values(header); len(vs) > 0 {
		ip = proxyIP(header, vs[len(vs)-1])
	}
	if !ip.IsValid() {
		ip = parseIP(r.RemoteAddr)
	}
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() || ip.IsLoopback() {
		return netip.Prefix{}
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// proxyIP returns the address in the last entry of v, the last line of
// the header named header: of Forwarded, the for of its last element
// (forwardedFor); of any other (X-Forwarded-For, X-Real-IP), an address,
// with a port or not, after its last comma. The zero Addr if the entry
// is no address.
func proxyIP(header, v string) netip.Addr {
	if http.CanonicalHeaderKey(header) == "Forwarded" {
		return forwardedFor(v)
	}
	return parseIP(strings.TrimSpace(v[strings.LastIndexByte(v, ',')+1:]))
}

// limited reports whether the limits per address apply to key: not to
// the server's own host, a loopback address or a transport without
// addresses (a Unix socket), which is most often a proxy in front of the
// server, whose clients would share its one address, or a load test.
func limited(key netip.Prefix) bool { return key.IsValid() }

// parseIP parses an IP address with or without a port; the zero Addr if
// s is neither.
func parseIP(s string) netip.Addr {
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr()
	}
	return netip.Addr{}
}

// addrTable counts, for each address that has members or whose budgets
// are not yet full again, its members, its joins and what its members
// say together; and the same for each IPv6 /48, a site (RFC 6177), of
// an address: a host given a /48 holds 65,536 /64s, each an address
// with limits of its own, and would otherwise have 65,536 times what a
// host with one IPv4 address has. An entry goes once it has no members
// and its budgets are full, at the next admission after that, and at
// most max are kept: a new one past them takes the place of the oldest
// without members, forgetting its budgets early. An entry with members
// is never refused for the table's sake: the table would then be one's
// to fill, and its entries are bounded by the connections, and by the
// members a site may have, anyway.
type addrTable struct {
	addr bounds  // immutable: the limits of an address
	site *bounds // immutable: the limits of a site; nil when sites have none
	max  int     // immutable: entries kept at most

	mu    sync.Mutex
	addrs map[netip.Prefix]*addr // guarded by mu: the entries, of addresses and of sites
	// idle heads a ring of the entries without members, in the order
	// they lost their last one; its own other fields are unused. Guarded
	// by mu.
	idle addr
}

// bounds are the limits of an address, or of a site: what the members
// from it may do together.
type bounds struct {
	conns    int     // members at once; negative: no bound
	joinRate float64 // joins a second; negative: no bound
	// msgRate and byteRate bound what the members say together, as a
	// member's rate does; negative: no bound.
	msgRate, byteRate float64
	who               string // "one address", "one IPv6 /48"
	tooFast           error  // why a message past msgRate or byteRate is not sent
}

func newBounds(conns int, joinRate, msgRate, byteRate float64, who string) bounds {
	return bounds{conns, joinRate, msgRate, byteRate, who, tooFastError(msgRate, byteRate, " from "+who)}
}

func (b *bounds) joinBurst() float64 { return max(joinBurst*b.joinRate, 1) }

// times returns n addresses' worth of b, for a site: each bound n
// times as large, and none where b has none.
func (b *bounds) times(n int, who string) bounds {
	conns := -1
	if b.conns >= 0 {
		conns = int(min(float64(n)*float64(b.conns), math.MaxInt32)) // not wrapped round to "no bound"
	}
	scale := func(rate float64) float64 {
		if rate < 0 {
			return -1
		}
		return float64(n) * rate
	}
	return newBounds(conns, scale(b.joinRate), scale(b.msgRate), scale(b.byteRate), who)
}

// addr is the entry of one address, or of one site.
type addr struct {
	key        netip.Prefix // immutable
	b          *bounds      // immutable: its table's addr or site
	conns      int          // guarded by the table's mu: members admitted and not released
	joins      float64      // guarded by the table's mu: joins left to make
	joined     time.Time    // guarded by the table's mu: when joins was last filled
	said       rate         // guarded by the table's mu: what its members may still say together
	full       time.Time    // guarded by the table's mu: without members, when its budgets are full
	prev, next *addr        // guarded by the table's mu: its neighbours in the idle ring, or nil
	// site is the entry of an address's site while the address has
	// members (a site with members stays in the table); nil for a site,
	// an IPv4 address, or when sites have no limits. Guarded by the
	// table's mu.
	site *addr
}

// newAddrTable returns a table with the limits given for an address,
// and siteAddrs addresses' worth of them for a site (none unless
// positive).
func newAddrTable(conns int, joinRate, msgRate, byteRate float64, siteAddrs int) *addrTable {
	t := &addrTable{addr: newBounds(conns, joinRate, msgRate, byteRate, "one address"), max: maxAddrs, addrs: make(map[netip.Prefix]*addr)}
	if siteAddrs > 0 {
		site := t.addr.times(siteAddrs, "one IPv6 /48")
		t.site = &site
	}
	t.idle.prev, t.idle.next = &t.idle, &t.idle
	return t
}

// keys returns what a member from key is counted under: key, and its
// site, the /48 of an IPv6 /64, when sites have limits. An IPv4
// address has no site: a host is seldom given many.
func (t *addrTable) keys(key netip.Prefix) []netip.Prefix {
	if t.site == nil || !key.Addr().Is6() {
		return []netip.Prefix{key}
	}
	site, _ := key.Addr().Prefix(48)
	return []netip.Prefix{key, site}
}

// refusal is why a join is refused before its upgrade, with 429 Too Many
// Requests: the response's text, and the seconds after which to try
// again (0: unknown). The zero refusal admits the join.
type refusal struct {
	text       string
	retryAfter int
}

// admit counts a member from key joining at now, against its address
// and its site, and returns its address's entry, or nil and why it may
// not join.
func (t *addrTable) admit(key netip.Prefix, now time.Time) (*addr, refusal) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for e := t.idle.next; e != &t.idle && !e.full.After(now); e = t.idle.next {
		t.forgetLocked(e)
	}
	// Room is made before either entry is looked up, so that neither
	// is forgotten while in use.
	keys := t.keys(key)
	t.makeRoomLocked(keys)
	a, site := t.entryLocked(key, &t.addr, now), (*addr)(nil)
	if len(keys) > 1 {
		site = t.entryLocked(keys[1], t.site, now)
	}
	entries := [2]*addr{a, site}
	for _, e := range entries {
		if e == nil {
			continue
		}
		if why := t.refusalLocked(e, now); why.text != "" {
			// One made for this join goes again, or waits in the
			// ring as any without members does.
			for _, e := range entries {
				if e != nil && e.conns == 0 && e.next == nil {
					t.settleLocked(e, now)
				}
			}
			return nil, why
		}
	}
	for _, e := range entries {
		if e == nil {
			continue
		}
		if e.b.joinRate >= 0 {
			e.joins--
		}
		if e.next != nil {
			unlinkLocked(e)
		}
		e.conns++
	}
	a.site = site
	return a, refusal{}
}

// makeRoomLocked forgets the oldest entries without members until those
// of keys not in the table fit within its bound, or none is left to
// forget.
//
// The caller holds t.mu.
func (t *addrTable) makeRoomLocked(keys []netip.Prefix) {
	for t.idle.next != &t.idle {
		n := len(t.addrs)
		for _, k := range keys {
			if t.addrs[k] == nil {
				n++
			}
		}
		if n == len(t.addrs) || n <= t.max {
			return
		}
		t.forgetLocked(t.idle.next)
	}
}

// entryLocked returns the entry of key, made with bounds b and every
// budget whole if the table has none.
//
// The caller holds t.mu.
func (t *addrTable) entryLocked(key netip.Prefix, b *bounds, now time.Time) *addr {
	e := t.addrs[key]
	if e == nil {
		e = &addr{key: key, b: b, joins: b.joinBurst(), joined: now, said: newRate(b.msgRate, b.byteRate, now)}
		t.addrs[key] = e
	}
	return e
}

// check returns why a member from key joining at now would be refused,
// as admit would refuse it, without counting it: the zero refusal if it
// would be admitted. It tells a page, whose WebSocket sees no status,
// why its join was refused.
func (t *addrTable) check(key netip.Prefix, now time.Time) refusal {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.keys(key) {
		// One not in the table is new, its every budget whole.
		if e := t.addrs[k]; e != nil {
			if why := t.refusalLocked(e, now); why.text != "" {
				return why
			}
		}
	}
	return refusal{}
}

// refusalLocked returns why e may take no member more at now, or the
// zero refusal. It counts nothing.
//
// The caller holds t.mu.
func (t *addrTable) refusalLocked(e *addr, now time.Time) refusal {
	b := e.b
	if b.conns >= 0 && e.conns >= b.conns {
		return refusal{"more than " + strconv.Itoa(b.conns) + " members from " + b.who, 0}
	}
	if b.joinRate >= 0 {
		t.fillJoinsLocked(e, now)
		if e.joins < 1 {
			wait := int(math.Ceil(min((1-e.joins)/b.joinRate, 1e6)))
			return refusal{"more than " + strconv.FormatFloat(b.joinRate, 'g', -1, 64) + " joins a second from " + b.who, wait}
		}
	}
	return refusal{}
}

// fillJoinsLocked adds to e's joins those its rate has given since they
// were last filled.
//
// The caller holds t.mu.
func (t *addrTable) fillJoinsLocked(e *addr, now time.Time) {
	e.joins = min(e.joins+now.Sub(e.joined).Seconds()*e.b.joinRate, e.b.joinBurst())
	e.joined = now
}

// forgetLocked removes e, which has no members, from the table.
//
// The caller holds t.mu.
func (t *addrTable) forgetLocked(e *addr) {
	unlinkLocked(e)
	delete(t.addrs, e.key)
}

// unlinkLocked takes e out of the idle ring.
//
// The caller holds its table's mu.
func unlinkLocked(e *addr) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

// release counts a member of a's less, and of its site's, at now. An
// entry left without members is kept until its budgets are full.
func (t *addrTable) release(a *addr, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range [2]*addr{a, a.site} {
		if e == nil {
			continue
		}
		if e.conns--; e.conns == 0 {
			e.site = nil // a site without members may go
			t.settleLocked(e, now)
		}
	}
}

// settleLocked puts e, without members and out of the idle ring, into
// the ring until its budgets are full, or out of the table if they are
// already.
//
// The caller holds t.mu.
func (t *addrTable) settleLocked(e *addr, now time.Time) {
	wait := e.said.fullIn(now)
	if e.b.joinRate > 0 {
		t.fillJoinsLocked(e, now)
		wait = max(wait, (e.b.joinBurst()-e.joins)/e.b.joinRate)
	}
	if wait <= 0 {
		delete(t.addrs, e.key)
		return
	}
	e.full = now.Add(time.Duration(min(wait, 1e6) * float64(time.Second)))
	e.prev, e.next = t.idle.prev, &t.idle
	e.prev.next, t.idle.prev = e, e
}

// allow reports whether a's members may say a message of n bytes at
// now, and its site's members too, and if so, counts it against both:
// nil, or why not.
func (t *addrTable) allow(a *addr, n int, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range [2]*addr{a, a.site} {
		if e == nil {
			continue
		}
		if e.said.fill(now); !e.said.has(n) {
			return e.b.tooFast
		}
	}
	for _, e := range [2]*addr{a, a.site} {
		if e != nil {
			e.said.take(n)
		}
	}
	return nil
}
