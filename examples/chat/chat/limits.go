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
	// addrRateFactor is how many members' worth of MessageRate and
	// ByteRate the members from one address may say together unless
	// Options say otherwise.
	addrRateFactor = 4
	// joinBurst is how many seconds' worth of joins an address may make
	// at once: a browser restoring its tabs, or a household's members
	// coming back after a restart of the server.
	joinBurst = 10
	// maxAddrs bounds the addresses without members a server keeps
	// limits for; those with members are bounded by its connections.
	maxAddrs = 1 << 16
)

// addrKey returns what r's limits are counted under: the client's IP
// address, an IPv6 address cut to its /64, and an IPv4-mapped one taken
// as IPv4. header, if not "", names a header set by a proxy in front of
// the server: its last entry is the client's address. A request from
// the server's own host, a loopback address or a transport without
// addresses (a Unix socket), gets the zero key, which has no limits
// (limited).
func addrKey(r *http.Request, header string) netip.Prefix {
	var ip netip.Addr
	if vs := r.Header.Values(header); len(vs) > 0 {
		last := vs[len(vs)-1]
		last = strings.TrimSpace(last[strings.LastIndexByte(last, ',')+1:])
		ip = parseIP(last)
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
// say together. An address's entry goes once it has no members and its
// budgets are full, at the next admission after that, and at most max
// are kept: a new address past them takes the place of the oldest
// without members, forgetting its budgets early. An address with members
// is never refused for the table's sake: the table would then be one's to
// fill, by a host holding a member in each of 65,536 /64s of its /48, and
// its entries are bounded by the connections anyway.
type addrTable struct {
	conns    int     // immutable: members an address may have at once; negative: no bound
	joinRate float64 // immutable: joins an address may make a second; negative: no bound
	// msgRate and byteRate bound what an address's members say
	// together, as a member's rate does; negative: no bound. Immutable.
	msgRate, byteRate float64
	tooFast           error // immutable: why a message past the address's rate is not sent
	max               int   // immutable: addresses kept at most

	mu    sync.Mutex
	addrs map[netip.Prefix]*addr // guarded by mu
	// idle heads a ring of the entries without members, in the order
	// they lost their last one; its own other fields are unused. Guarded
	// by mu.
	idle addr
}

// addr is the entry of one address.
type addr struct {
	key        netip.Prefix // immutable
	conns      int          // guarded by the table's mu: members admitted and not released
	joins      float64      // guarded by the table's mu: joins left to make
	joined     time.Time    // guarded by the table's mu: when joins was last filled
	said       rate         // guarded by the table's mu: what its members may still say together
	full       time.Time    // guarded by the table's mu: without members, when its budgets are full
	prev, next *addr        // guarded by the table's mu: its neighbours in the idle ring, or nil
}

func newAddrTable(conns int, joinRate, msgRate, byteRate float64) *addrTable {
	t := &addrTable{conns: conns, joinRate: joinRate, msgRate: msgRate, byteRate: byteRate, max: maxAddrs, addrs: make(map[netip.Prefix]*addr)}
	t.tooFast = tooFastError(msgRate, byteRate, " from one address")
	t.idle.prev, t.idle.next = &t.idle, &t.idle
	return t
}

func (t *addrTable) joinBurst() float64 { return max(joinBurst*t.joinRate, 1) }

// refusal is why a join is refused before its upgrade, with 429 Too Many
// Requests: the response's text, and the seconds after which to try
// again (0: unknown). The zero refusal admits the join.
type refusal struct {
	text       string
	retryAfter int
}

// admit counts a member from key joining at now, and returns its
// address's entry, or nil and why it may not join.
func (t *addrTable) admit(key netip.Prefix, now time.Time) (*addr, refusal) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for e := t.idle.next; e != &t.idle && !e.full.After(now); e = t.idle.next {
		t.forgetLocked(e)
	}
	a := t.addrs[key]
	if a == nil {
		if len(t.addrs) >= t.max && t.idle.next != &t.idle {
			t.forgetLocked(t.idle.next)
		}
		a = &addr{key: key, joins: t.joinBurst(), joined: now, said: newRate(t.msgRate, t.byteRate, now)}
		t.addrs[key] = a
	}
	if why := t.refusalLocked(a, now); why.text != "" {
		return nil, why
	}
	if t.joinRate >= 0 {
		a.joins--
	}
	if a.next != nil {
		unlinkLocked(a)
	}
	a.conns++
	return a, refusal{}
}

// check returns why a member from key joining at now would be refused,
// as admit would refuse it, without counting it: the zero refusal if it
// would be admitted. It tells a page, whose WebSocket sees no status,
// why its join was refused.
func (t *addrTable) check(key netip.Prefix, now time.Time) refusal {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.addrs[key]
	if a == nil {
		return refusal{} // a new address, every budget whole
	}
	return t.refusalLocked(a, now)
}

// refusalLocked returns why a may take no member more at now, or the
// zero refusal. It counts nothing.
//
// The caller holds t.mu.
func (t *addrTable) refusalLocked(a *addr, now time.Time) refusal {
	if t.conns >= 0 && a.conns >= t.conns {
		return refusal{"more than " + strconv.Itoa(t.conns) + " members from one address", 0}
	}
	if t.joinRate >= 0 {
		t.fillJoinsLocked(a, now)
		if a.joins < 1 {
			wait := int(math.Ceil(min((1-a.joins)/t.joinRate, 1e6)))
			return refusal{"more than " + strconv.FormatFloat(t.joinRate, 'g', -1, 64) + " joins a second from one address", wait}
		}
	}
	return refusal{}
}

// fillJoinsLocked adds to a's joins those its rate has given since they
// were last filled.
//
// The caller holds t.mu.
func (t *addrTable) fillJoinsLocked(a *addr, now time.Time) {
	a.joins = min(a.joins+now.Sub(a.joined).Seconds()*t.joinRate, t.joinBurst())
	a.joined = now
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

// release counts a member of a's less, at now. An address left without
// members is kept until its budgets are full.
func (t *addrTable) release(a *addr, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a.conns--; a.conns > 0 {
		return
	}
	wait := a.said.fullIn(now)
	if t.joinRate > 0 {
		t.fillJoinsLocked(a, now)
		wait = max(wait, (t.joinBurst()-a.joins)/t.joinRate)
	}
	if wait <= 0 {
		delete(t.addrs, a.key)
		return
	}
	a.full = now.Add(time.Duration(min(wait, 1e6) * float64(time.Second)))
	a.prev, a.next = t.idle.prev, &t.idle
	a.prev.next, t.idle.prev = a, a
}

// allow reports whether a's members may say a message of n bytes at
// now, and if so, counts it.
func (t *addrTable) allow(a *addr, n int, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return a.said.allow(n, now)
}
