// Package chat serves chat rooms over WebSocket, with a page to join them
// from a browser. The rooms' events travel over a Bus: a LocalBus when one
// process serves the chat (examples/chat), Redis Streams when several do
// (examples/chat-redis).
//
// A member connects to /ws?room=NAME&name=NICK (room "lobby" and name
// "anonymous" when absent; each at most 64 bytes, not blank, without
// control characters). Every text message it sends is a chat message,
// delivered to every member of the room, the sender included, and to no
// one else. It receives JSON objects, one per text message:
//
//	{"type":"join","name":"bob","members":["alice","bob"]}
//	{"type":"join","name":"carol"}
//	{"type":"leave","name":"alice"}
//	{"type":"members","members":["bob","carol","dave"]}
//	{"type":"message","from":"alice","text":"hello"}
//	{"type":"error","text":"not sent: the message bus is unreachable"}
//
// The first object a member receives is its own join, whose members
// lists the names of the room's members, sorted, a name as many times as
// members bear it. From then on it receives the room's events in the
// room's one order: the messages, each with its text exactly as sent,
// the same for every member; the joins and leaves of others, by name
// alone, for it to keep the list; and "members", the whole list again,
// when a server's roll call tells its server other than the joins and
// leaves did (the other server had members in the room before this one
// followed it, or events were lost). Joins, leaves and lists are what
// each member's server knows of the room, which for a while can differ
// from one server to another. "error" says that a message of this
// member's was not taken: the bus refused it, or the member said more than
// its rate allows (Options.MessageRate and ByteRate, 5 messages and 64
// KiB a second by default, with bursts of twice as much), or the members
// from its address said more together than theirs allows. A member that
// cannot join because the bus refuses its join is closed with 1013 (try
// again later), the reason saying why, and so is one whose join the bus
// holds (its store unreachable) for longer than Options.JoinWait, 15
// seconds by default: its leave then follows the join.
//
// The server also bounds what each remote address does, whatever its
// members' names: how many members it has at once (Options.AddrConns, 32
// by default), how often it joins (AddrJoinRate, once a second with
// bursts of ten), and what its members say together (AddrMessageRate and
// AddrByteRate, four members' worth by default); and what the addresses
// of one IPv6 /48 do together, SiteAddrs addresses' worth of each (8 by
// default). A join past the members or the joins of its address or its
// site is refused before the WebSocket handshake, with 429 Too Many
// Requests (and Retry-After, for the join rate): it costs the server no
// connection, and the room no join and no leave. A browser's WebSocket
// sees no status, only 1006, so /ws/check, with the query of a join,
// answers as /ws would answer that join now, joining nothing: 204 No
// Content for one that would be admitted, else its refusal (the page
// asks there why its join failed).
//
// An address is the client's IPv4 address, or the /64 of its IPv6
// address, the block one host or one network is given, within which a
// host may take new addresses at will; behind a proxy,
// Options.ClientIPHeader names the header that tells the client's
// address. A client of the server's own host (a loopback address, or a
// Unix socket) has no limits per address: it is most often a proxy in
// front of the server, whose clients would share one address, or a load
// test. Each server counts its own members alone, and logs no refusal (a
// flood would flood the log).
//
// Each member's messages go out through its connection's write queue,
// bounded at QueueLimit, by PreparedMessage.Broadcast: the room never
// waits for a member, and one whose queue fills because it stopped
// reading is disconnected with 1008. Keepalive pings a quiet member and
// drops one that answers nothing. A binary message is answered with 1003.
package chat

import (
	"cmp"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rfc6455/websocket"
)

//go:embed index.html
var indexHTML []byte

const (
	// QueueLimit bounds what a member's connection holds unsent; a member
	// whose queue is full is disconnected with 1008.
	QueueLimit = 1 << 20
	// MaxMessage is the longest message a member may send, in bytes;
	// longer ones close its connection with 1009.
	MaxMessage = 64 << 10
	// maxName is the longest room or member name, in bytes.
	maxName = 64
	// DefaultMessageRate and DefaultByteRate are what a member may say a
	// second, on average, unless Options say otherwise: a member that
	// floods its room, all of whose members get every message, would
	// otherwise fill the queues of those that read slowly until they are
	// disconnected.
	DefaultMessageRate = 5
	DefaultByteRate    = 64 << 10
)

// Options configure a Server.
type Options struct {
	// PingInterval and PongTimeout are the connections' keepalive: a
	// member that sends nothing for PingInterval is pinged, and dropped if
	// nothing comes within PongTimeout. 0 means 20 seconds each.
	PingInterval, PongTimeout time.Duration
	// MessageRate and ByteRate bound the messages and bytes a member may
	// say a second, on average, with bursts of two seconds' worth (and of
	// at least MaxMessage bytes); the bytes are counted as every member
	// is sent them, the text as a JSON string (sentSize). A message past
	// either is not sent, and the member gets an "error"; one longer than
	// the burst goes when the budget is whole, and leaves it in debt. 0
	// (or NaN) means DefaultMessageRate and DefaultByteRate; a negative
	// rate, or +Inf, no bound.
	MessageRate, ByteRate float64
	// Logf reports members as they come and go; nil means no log.
	Logf func(format string, args ...any)
	// JoinWait is how long a member waits for its own join to come back
	// from the bus, as every member of the room hears it, before it is
	// closed with 1013 (try again later): a bus that holds events while
	// its store is unreachable holds the join too, and the member would
	// otherwise wait, told nothing, for as long as that lasts. 0 means 15
	// seconds.
	JoinWait time.Duration

	// IdleTimeout is how long Run lets an HTTP connection wait for its
	// next request (a browser keeps the page's open) before it closes
	// it; 0 means 2 minutes. A member's WebSocket is no request in
	// waiting.
	IdleTimeout time.Duration

	// AddrConns bounds the members one address may have at once; a join
	// past it is refused with 429. 0 means DefaultAddrConns; negative, no
	// bound. A member is counted from before its handshake until its
	// leave.
	AddrConns int
	// AddrJoinRate bounds the joins one address may make a second, on
	// average, with bursts of ten seconds' worth (at least 1); a join
	// past it is refused with 429, with a Retry-After of the seconds
	// until the next may come. Refused joins are not counted. 0 (or NaN)
	// means DefaultAddrJoinRate; negative, or +Inf, no bound.
	AddrJoinRate float64
	// AddrMessageRate and AddrByteRate bound what the members from one
	// address may say together, as MessageRate and ByteRate bound each
	// member, each of those messages counted against both: a message
	// past the address's rate is not sent either, and its member gets
	// an "error". 0 (or NaN) means four times MessageRate and ByteRate
	// (no bound where those are none); negative, or +Inf, no bound.
	AddrMessageRate, AddrByteRate float64
	// SiteAddrs is how many addresses' worth of each of the four limits
	// above the members from one IPv6 /48, a site, have together: a host
	// given a /48 holds 65,536 /64s, and would otherwise have 65,536
	// times what one address may. A join or a message past its site's
	// limits is refused as one past its address's. 0 means
	// DefaultSiteAddrs; negative, no bound on a site beyond those on each
	// of its addresses.
	SiteAddrs int
	// ClientIPHeader, if not "", names a request header that holds the
	// client's address, as a proxy in front of the server sets it
	// (X-Forwarded-For, X-Real-IP, or Forwarded, RFC 7239): the header's
	// last entry, the one the proxy added, is the member's address (of
	// Forwarded, the for of its last element, an IPv6 address in
	// brackets, either with a port or not); a request whose last entry
	// is no address (unknown, an obfuscated identifier, or malformed) or
	// that has no such header counts under the address it came from. Set
	// it only when every request comes through such a proxy: a client
	// that reaches the server directly writes in it any address it
	// likes. By default the limits count the address of the connection,
	// which behind a proxy is the proxy's, shared by every client (none
	// at all for a proxy on the same host: a loopback address has no
	// limits).
	ClientIPHeader string
}

// Server serves the page and the rooms of one process, the rooms' events
// going over its bus.
type Server struct {
	bus     Bus     // immutable
	origin  string  // immutable: this server's ID in the events it publishes
	opts    Options // immutable
	tooFast error   // immutable: why a message past a member's rate is not sent
	reg     websocket.Registry
	closing atomic.Bool // Shutdown has begun: /ws refuses joins with 503
	serving memberCount
	addrs   *addrTable       // immutable: the limits per address; nil when there are none
	now     func() time.Time // immutable: the clock of the rates (the tests' own)

	lastID atomic.Uint64 // the last member ID given out on this server
	mu     sync.Mutex
	rooms  map[string]*room // guarded by mu: the rooms this server has members in
}

// Flags defines the flags of a chat command on fs: -addr, and
// -ping-interval, -pong-timeout, -msg-rate, -byte-rate, -addr-conns,
// -addr-join-rate, -addr-msg-rate, -addr-byte-rate, -site-addrs and
// -client-ip-header for the returned options, which log with
// log.Printf.
func Flags(fs *flag.FlagSet) (addr *string, opts *Options) {
	opts = &Options{Logf: log.Printf}
	addr = fs.String("addr", "127.0.0.1:8080", "address to listen on")
	fs.DurationVar(&opts.PingInterval, "ping-interval", 20*time.Second, "ping a member silent for this long")
	fs.DurationVar(&opts.PongTimeout, "pong-timeout", 20*time.Second, "disconnect a pinged member that answers nothing within this")
	fs.Float64Var(&opts.MessageRate, "msg-rate", DefaultMessageRate, "messages a member may say a second, with bursts of twice as many (0: the default; negative: no bound)")
	fs.Float64Var(&opts.ByteRate, "byte-rate", DefaultByteRate, "bytes a member may say a second, counted as JSON text, with bursts of twice as many and of at least 64 KiB, the longest message (0: the default; negative: no bound)")
	fs.IntVar(&opts.AddrConns, "addr-conns", DefaultAddrConns, "members one address (IPv4, or IPv6 /64) may have at once; a join past it is refused with 429 (0: the default; negative: no bound)")
	fs.Float64Var(&opts.AddrJoinRate, "addr-join-rate", DefaultAddrJoinRate, "joins one address may make a second, with bursts of ten times as many; a join past it is refused with 429 (0: the default; negative: no bound)")
	fs.Float64Var(&opts.AddrMessageRate, "addr-msg-rate", 0, "messages the members from one address may say together a second, with bursts of twice as many (0: four times -msg-rate; negative: no bound)")
	fs.Float64Var(&opts.AddrByteRate, "addr-byte-rate", 0, "bytes the members from one address may say together a second, as -byte-rate counts them (0: four times -byte-rate; negative: no bound)")
	fs.IntVar(&opts.SiteAddrs, "site-addrs", DefaultSiteAddrs, "addresses' worth of each limit per address the members from one IPv6 /48 have together (0: the default; negative: no bound beyond each /64's)")
	fs.StringVar(&opts.ClientIPHeader, "client-ip-header", "", "take a member's address from the last entry of this header (X-Forwarded-For, X-Real-IP, or Forwarded: the for of its last element), for a server that only a proxy setting it reaches (empty: the connection's address)")
	return addr, opts
}

// NewServer returns a server whose rooms' events go over bus.
func NewServer(bus Bus, opts *Options) *Server {
	s := &Server{bus: bus, origin: rand.Text(), rooms: make(map[string]*room), now: time.Now}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Logf == nil {
		s.opts.Logf = func(string, ...any) {}
	}
	o := &s.opts
	o.MessageRate = rateOption(o.MessageRate, DefaultMessageRate)
	o.ByteRate = rateOption(o.ByteRate, DefaultByteRate)
	o.AddrJoinRate = rateOption(o.AddrJoinRate, DefaultAddrJoinRate)
	o.AddrMessageRate = rateOption(o.AddrMessageRate, addrRateFactor*o.MessageRate)
	o.AddrByteRate = rateOption(o.AddrByteRate, addrRateFactor*o.ByteRate)
	if o.AddrConns == 0 {
		o.AddrConns = DefaultAddrConns
	}
	if o.SiteAddrs == 0 {
		o.SiteAddrs = DefaultSiteAddrs
	}
	if o.JoinWait == 0 {
		o.JoinWait = 15 * time.Second
	}
	s.tooFast = tooFastError(o.MessageRate, o.ByteRate, "")
	if o.AddrConns > 0 || o.AddrJoinRate >= 0 || o.AddrMessageRate >= 0 || o.AddrByteRate >= 0 {
		s.addrs = newAddrTable(o.AddrConns, o.AddrJoinRate, o.AddrMessageRate, o.AddrByteRate, o.SiteAddrs)
	}
	return s
}

// rateOption returns the rate an option v sets: def for 0 and NaN, which
// bounds nothing sensible, -1 (no bound) for any negative rate or +Inf.
func rateOption(v, def float64) float64 {
	if v == 0 || math.IsNaN(v) {
		v = def
	}
	if v < 0 || math.IsInf(v, 1) {
		return -1
	}
	return v
}

// tooFastError says why a message past the rates given is not sent.
// They are written as plain decimals: 'g' would write a site's 2 MiB a
// second as 2.097152e+06.
func tooFastError(msgRate, byteRate float64, who string) error {
	var bounds []string
	if msgRate > 0 {
		bounds = append(bounds, strconv.FormatFloat(msgRate, 'f', -1, 64)+" messages")
	}
	if byteRate > 0 {
		bounds = append(bounds, strconv.FormatFloat(byteRate, 'f', -1, 64)+" bytes")
	}
	return errors.New("more than " + strings.Join(bounds, " or ") + " a second" + who)
}

// Handler serves the page at /, the members' WebSocket at /ws, and at
// /ws/check why a join to /ws would be refused (serveCheck).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(indexHTML)
	})
	mux.HandleFunc("/ws", s.serveMember)
	mux.HandleFunc("GET /ws/check", s.serveCheck)
	return mux
}

// Shutdown sends 1001 to every member, and waits until each has closed and
// left its room, or until ctx ends (the connections left are then closed
// at once). New members are refused meanwhile with 503.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.shutdownMembers(ctx)
	select {
	case <-s.serving.none():
	case <-ctx.Done():
		err = ctx.Err()
	}
	return err
}

// shutdownMembers has the registry send 1001 to every member and refuse
// new ones, noting for serveCheck that joins are refused now.
func (s *Server) shutdownMembers(ctx context.Context) error {
	s.closing.Store(true)
	return s.reg.Shutdown(ctx)
}

// memberCount counts the members being served, each from before its
// handshake to its leave. A sync.WaitGroup would not do: a member may
// come (and be refused) while Shutdown waits for the count to reach
// zero, and a WaitGroup's Add from zero must not run alongside a Wait.
type memberCount struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n reaches 0; nil when no one waits
}

func (mc *memberCount) add() {
	mc.mu.Lock()
	mc.n++
	mc.mu.Unlock()
}

func (mc *memberCount) done() {
	mc.mu.Lock()
	if mc.n--; mc.n == 0 && mc.zero != nil {
		close(mc.zero)
		mc.zero = nil
	}
	mc.mu.Unlock()
}

// none returns a channel closed once no member is counted.
func (mc *memberCount) none() <-chan struct{} {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.n == 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if mc.zero == nil {
		mc.zero = make(chan struct{})
	}
	return mc.zero
}

// Run serves s on addr until ctx ends, then shuts down: the listener
// closes, every member is sent 1001 and given 10 seconds to close. ready
// is called with the page's URL once the listener is open.
func Run(ctx context.Context, addr string, s *Server, ready func(url string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       cmp.Or(s.opts.IdleTimeout, 2*time.Minute),
	}
	hs.RegisterOnShutdown(func() { s.shutdownMembers(context.Background()) })
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	ready("http://" + net.JoinHostPort(host, port) + "/")

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		s.opts.Logf("chat: http shutdown: %v", err)
	}
	if err := s.Shutdown(shutdownCtx); err != nil {
		s.opts.Logf("chat: members not closed within 10 s: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// validName reports whether a room or member name may be used: at most
// maxName bytes of UTF-8, not blank, without control characters (a
// newline or an escape sequence would reach every member's log and
// terminal) nor the bidirectional overrides and isolates, which turn the
// text after them around. Other format characters stay: the zero-width
// joiner makes one emoji of several.
func validName(s string) bool {
	if len(s) > maxName || !utf8.ValidString(s) || strings.TrimSpace(s) == "" {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || ('\u202a' <= r && r <= '\u202e') || ('\u2066' <= r && r <= '\u2069') {
			return false
		}
	}
	return true
}

// joinNames returns the room and the name a join asks for, or answers
// it with 400 Bad Request and returns ok false.
func joinNames(w http.ResponseWriter, r *http.Request) (roomName, name string, ok bool) {
	// Parsed whole, not as URL.Query, which drops what it cannot parse
	// (a pair with a semicolon): room=a;b would join the lobby.
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, "bad query: "+err.Error(), http.StatusBadRequest)
		return "", "", false
	}
	roomName, name = q.Get("room"), q.Get("name")
	if roomName == "" {
		roomName = "lobby"
	}
	if name == "" {
		name = "anonymous"
	}
	if !validName(roomName) || !validName(name) {
		http.Error(w, "room and name: at most 64 bytes of UTF-8 each, not blank, without control characters", http.StatusBadRequest)
		return "", "", false
	}
	return roomName, name, true
}

// refuse answers a join with its refusal: 429 Too Many Requests.
func refuse(w http.ResponseWriter, why refusal) {
	if why.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(why.retryAfter))
	}
	http.Error(w, why.text, http.StatusTooManyRequests)
}

// serveCheck answers a request for /ws/check, with the query of a join,
// as /ws would answer that join now, but joins nothing and counts
// nothing: 204 No Content for a join that would be admitted, else the
// status, text and Retry-After of its refusal (503 once Shutdown began).
// A browser's WebSocket tells the page 1006 alone for a handshake
// refused, whatever its status and text (a page could otherwise probe
// servers it cannot fetch from), so the page asks here why.
func (s *Server) serveCheck(w http.ResponseWriter, r *http.Request) {
	// What it tells holds for the moment it is asked.
	w.Header().Set("Cache-Control", "no-store")
	if _, _, ok := joinNames(w, r); !ok {
		return
	}
	if s.addrs != nil {
		if key := addrKey(r, s.opts.ClientIPHeader); limited(key) {
			if why := s.addrs.check(key, s.now()); why.text != "" {
				refuse(w, why)
				return
			}
		}
	}
	if s.closing.Load() {
		// As Accept refuses a join once the registry shuts down: after
		// the limits per address, which /ws checks before Accept.
		http.Error(w, "websocket: server shutting down", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// serveMember takes a member into its room until it leaves.
func (s *Server) serveMember(w http.ResponseWriter, r *http.Request) {
	roomName, name, ok := joinNames(w, r)
	if !ok {
		return
	}
	// Refused before the upgrade, a join past its address's limits costs
	// no connection, and the room no join and no leave.
	var a *addr
	if s.addrs != nil {
		if key := addrKey(r, s.opts.ClientIPHeader); limited(key) {
			var why refusal
			if a, why = s.addrs.admit(key, s.now()); a == nil {
				refuse(w, why)
				return
			}
		}
	}
	release := func() {
		if a != nil {
			s.addrs.release(a, s.now())
		}
	}
	// Counted before Accept: once http.Server.Shutdown has returned,
	// every member is counted.
	s.serving.add()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Registry:          &s.reg,
		KeepaliveInterval: s.opts.PingInterval,
		KeepaliveTimeout:  s.opts.PongTimeout,
		WriteQueueLimit:   QueueLimit,
		CloseOnQueueFull:  true,
		Compression:       websocket.CompressionNoContextTakeover,
	})
	if err != nil {
		s.opts.Logf("chat: refused %s: %v", r.RemoteAddr, err)
		release()
		s.serving.done()
		return
	}
	c.SetReadLimit(MaxMessage)
	m := &member{id: strconv.FormatUint(s.lastID.Add(1), 10), name: name, c: c, addr: a, rate: newRate(s.opts.MessageRate, s.opts.ByteRate, s.now())}
	rm := s.enter(roomName)
	if err := rm.join(m); err != nil {
		s.opts.Logf("chat: %q could not join %q: %v", name, roomName, err)
		c.Close(websocket.StatusTryAgainLater, closeReason(err))
		s.exit(rm)
		release()
		s.serving.done()
		return
	}
	s.opts.Logf("chat: %q joined %q from %s", name, roomName, r.RemoteAddr)
	rm.awaitJoin(m, s.opts.JoinWait)
	c.Serve(func(typ websocket.MessageType, p []byte) {
		rm.say(m, typ, p)
	}, func(err error) {
		// Released first: once the room hears the leave, the address
		// may join again.
		release()
		rm.leave(m)
		s.exit(rm)
		s.opts.Logf("chat: %q left %q: %v", name, roomName, err)
		s.serving.done()
	})
}

// closeReason is err's text as a close frame's reason, cut to the 123
// bytes one holds.
func closeReason(err error) string {
	r := err.Error()
	if len(r) > 123 {
		r = strings.ToValidUTF8(r[:123], "")
	}
	return r
}

// enter returns the room called name, following it on the bus if no
// member of this server is in it yet, and counts one more member in it.
func (s *Server) enter(name string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[name]
	if r == nil {
		r = &room{s: s, name: name, local: make(map[string]string), waiting: make(map[string]*member), roster: make(map[string]map[string]string)}
		r.cancel = s.bus.Subscribe(name, r.deliver)
		s.rooms[name] = r
	}
	r.users++
	return r
}

// exit counts one member less in r, and stops following it once it has
// none.
func (s *Server) exit(r *room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.users--
	if r.users == 0 {
		delete(s.rooms, r.name)
		r.cancel()
	}
}

// member is a connection in a room.
type member struct {
	id   string // immutable: unique on this server
	name string // immutable
	c    *websocket.Conn
	addr *addr    // immutable: its address's entry; nil when there are no limits per address
	held [][]byte // guarded by its room's mu: errors for it to get after its join
	// joinWait closes it if its join has not come back within
	// Options.JoinWait; stopped once it has. Guarded by its room's mu.
	joinWait *time.Timer
	rate     rate // used by its connection's onMessage alone
	// refused says it sent a binary message, answered with 1003: what it
	// says until the close ends it goes nowhere. Used by its connection's
	// onMessage alone.
	refused bool
}

// rate is what a member, or the members of an address together, may
// still say: two token buckets, of messages and of bytes, each refilled
// at its rate up to two seconds' worth.
type rate struct {
	msgRate, byteRate float64 // a second; negative: no bound
	msgs, bytes       float64 // left to say
	last              time.Time
}

func newRate(msgRate, byteRate float64, now time.Time) rate {
	r := rate{msgRate: msgRate, byteRate: byteRate, last: now}
	r.msgs, r.bytes = r.msgBurst(), r.byteBurst()
	return r
}

func (r *rate) msgBurst() float64  { return max(2*r.msgRate, 1) }
func (r *rate) byteBurst() float64 { return max(2*r.byteRate, MaxMessage) }

// fill adds what the rates have given since the last fill, at now.
func (r *rate) fill(now time.Time) {
	dt := now.Sub(r.last).Seconds()
	r.last = now
	if r.msgRate >= 0 {
		r.msgs = min(r.msgs+dt*r.msgRate, r.msgBurst())
	}
	if r.byteRate >= 0 {
		r.bytes = min(r.bytes+dt*r.byteRate, r.byteBurst())
	}
}

// has reports whether a message of n bytes may be said now, as last
// filled. A message past the burst goes once the bucket is full, leaving
// it in debt.
func (r *rate) has(n int) bool {
	return (r.msgRate < 0 || r.msgs >= 1) && (r.byteRate < 0 || r.bytes >= min(float64(n), r.byteBurst()))
}

// take counts a message of n bytes.
func (r *rate) take(n int) {
	if r.msgRate >= 0 {
		r.msgs--
	}
	if r.byteRate >= 0 {
		r.bytes -= float64(n)
	}
}

// fullIn returns the seconds from now until both buckets are full.
func (r *rate) fullIn(now time.Time) float64 {
	r.fill(now)
	var s float64
	if r.msgRate > 0 {
		s = (r.msgBurst() - r.msgs) / r.msgRate
	}
	if r.byteRate > 0 {
		s = max(s, (r.byteBurst()-r.bytes)/r.byteRate)
	}
	return s
}

// sentSize is how many bytes the text p takes in the JSON that every
// member gets: encoding/json writes <, > and & as \u003c, other control
// characters as \u0001, U+2028 and U+2029 as \u2028, and ", \\, \b, \f,
// \n, \r and \t in two bytes. Counted by it, text of "<" is not six
// times what the byte rate allows.
func sentSize(p []byte) int {
	n := len(p)
	for i, b := range p {
		switch {
		case b == '"' || b == '\\' || b == '\b' || b == '\f' || b == '\n' || b == '\r' || b == '\t':
			n++
		case b < 0x20 || b == '<' || b == '>' || b == '&':
			n += 5
		case b == 0xE2 && i+2 < len(p) && p[i+1] == 0x80 && p[i+2]&^1 == 0xA8:
			n += 3
		}
	}
	return n
}

// maxHeld bounds the errors a member that waits for its join gets after
// it.
const maxHeld = 16

// room is a room as one server sees it: its own members, and the room's
// events as the bus delivers them.
type room struct {
	s      *Server // immutable
	name   string  // immutable
	cancel func()  // immutable: stops following the room on the bus
	users  int     // guarded by s.mu: members of this server entered and not exited

	// pubMu is held across every Publish to the room, so that this
	// server's events go out in order and a "here" lists the members of
	// the joins and leaves published before it.
	pubMu  sync.Mutex
	local  map[string]string // guarded by pubMu: members whose join went out and leave did not, ID to name
	called bool              // guarded by pubMu: the first join went out, with the roll call

	mu      sync.Mutex
	waiting map[string]*member           // guarded by mu: joined, their join not yet delivered, by ID
	conns   []*websocket.Conn            // guarded by mu: members whose join was delivered: they get the room's events
	roster  map[string]map[string]string // guarded by mu: every server's members, as the events tell: origin to ID to name
}

// publishLocked sends ev from this server to the room.
//
// The caller holds r.pubMu.
func (r *room) publishLocked(ev Event) error {
	ev.Origin = r.s.origin
	return r.s.bus.Publish(r.name, ev)
}

// join publishes m's join. m gets the room's events from the moment it
// is delivered.
func (r *room) join(m *member) error {
	r.mu.Lock()
	r.waiting[m.id] = m
	r.mu.Unlock()
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	err := r.publishLocked(Event{Type: "join", Member: m.id, Name: m.name, Call: !r.called})
	if err != nil {
		r.mu.Lock()
		delete(r.waiting, m.id)
		r.mu.Unlock()
		return err
	}
	r.called = true
	r.local[m.id] = m.name
	return nil
}

// awaitJoin closes m with 1013 unless its join, published, comes back
// from the bus within d. Its leave follows the join, which the bus
// holds, so that the room, once the bus delivers them, does not list it.
func (r *room) awaitJoin(m *member, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiting[m.id] != m {
		return // back already
	}
	m.joinWait = time.AfterFunc(d, func() {
		r.mu.Lock()
		late := r.waiting[m.id] == m
		r.mu.Unlock()
		if late {
			r.s.opts.Logf("chat: the join of %q to %q did not come back from the bus within %v", m.name, r.name, d)
			m.c.Close(websocket.StatusTryAgainLater, "the message bus did not deliver the join within "+d.String())
		}
	})
}

// leave stops sending m the room's events and publishes its leave.
func (r *room) leave(m *member) {
	r.mu.Lock()
	delete(r.waiting, m.id)
	if m.joinWait != nil {
		m.joinWait.Stop()
	}
	if i := slices.Index(r.conns, m.c); i >= 0 {
		r.conns = slices.Delete(r.conns, i, i+1)
	}
	r.mu.Unlock()
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	delete(r.local, m.id)
	if err := r.publishLocked(Event{Type: "leave", Member: m.id, Name: m.name}); err != nil {
		r.s.opts.Logf("chat: the leave of %q from %q is lost: %v", m.name, r.name, err)
	}
}

// say publishes what m sent.
func (r *room) say(m *member, typ websocket.MessageType, p []byte) {
	switch {
	case m.refused:
		return
	case typ != websocket.MessageText:
		m.refused = true
		m.c.CloseWrite(websocket.StatusUnsupportedData, "text messages only")
		return
	}
	// Counted against the member's rate, then its address's and its
	// site's, and against all of them or none.
	n, now := sentSize(p), r.s.now()
	m.rate.fill(now)
	var err error
	switch {
	case !m.rate.has(n):
		err = r.s.tooFast
	case m.addr != nil:
		err = r.s.addrs.allow(m.addr, n, now)
	}
	if err == nil {
		m.rate.take(n)
		r.pubMu.Lock()
		err = r.publishLocked(Event{Type: "message", Member: m.id, Name: m.name, Text: string(p)})
		r.pubMu.Unlock()
	}
	if err == nil {
		return
	}
	msg := encode(struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}{"error", "not sent: " + err.Error()})
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiting[m.id] == m {
		// The first object a member gets is its own join.
		if len(m.held) < maxHeld {
			m.held = append(m.held, msg)
		}
		return
	}
	m.c.Enqueue(websocket.MessageText, msg)
}

// answerCall publishes the members this server has in the room, for a
// server that has just begun following it.
func (r *room) answerCall() {
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	if len(r.local) == 0 {
		return
	}
	if err := r.publishLocked(Event{Type: "here", Members: maps.Clone(r.local)}); err != nil {
		r.s.opts.Logf("chat: the members in %q are not reported: %v", r.name, err)
	}
}

// deliver takes the room's next event: it updates the roster and sends the
// event to this server's members.
func (r *room) deliver(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev.Type {
	case "join":
		known := r.roster[ev.Origin][ev.Member] == ev.Name
		r.setMemberLocked(ev.Origin, ev.Member, ev.Name)
		m := r.waiting[ev.Member]
		if m != nil && ev.Origin == r.s.origin {
			delete(r.waiting, ev.Member)
			if m.joinWait != nil {
				m.joinWait.Stop()
			}
		} else {
			m = nil
		}
		if ev.Call && ev.Origin != r.s.origin {
			go r.answerCall()
		}
		// The others learn the name alone, the joiner every name: a
		// join that told every member every name would cost each
		// member the room's size, and N joins N² bytes each. A join
		// the roster had already (a roll call told it) is no news.
		if !known {
			r.sendLocked(presence{Type: "join", Name: ev.Name})
		}
		if m != nil {
			r.conns = append(r.conns, m.c)
			m.c.Enqueue(websocket.MessageText, encode(roll{Type: "join", Name: ev.Name, Members: r.namesLocked()}))
			for _, p := range m.held {
				m.c.Enqueue(websocket.MessageText, p)
			}
			m.held = nil
		}
	case "leave":
		// A leave of a member the roster does not have (it joined
		// before this server followed the room, and left before its
		// server answered the roll call) is no news either: the members
		// keep the list by name, and would take another's off.
		if _, ok := r.roster[ev.Origin][ev.Member]; ok {
			r.setMemberLocked(ev.Origin, ev.Member, "")
			r.sendLocked(presence{Type: "leave", Name: ev.Name})
		}
	case "here":
		// A server's roll call: news only where it differs from what
		// its joins and leaves told (it had members before this server
		// followed the room, or events of its were lost).
		if maps.Equal(r.roster[ev.Origin], ev.Members) {
			return
		}
		delete(r.roster, ev.Origin)
		for id, name := range ev.Members {
			r.setMemberLocked(ev.Origin, id, name)
		}
		r.sendLocked(roll{Type: "members", Members: r.namesLocked()})
	case "message":
		r.sendLocked(message{Type: "message", From: ev.Name, Text: ev.Text})
	}
}

// setMemberLocked records a member of the server origin, or its absence
// when name is "".
//
// The caller holds r.mu.
func (r *room) setMemberLocked(origin, id, name string) {
	members := r.roster[origin]
	if name == "" {
		delete(members, id)
		if len(members) == 0 {
			delete(r.roster, origin)
		}
		return
	}
	if members == nil {
		members = make(map[string]string)
		r.roster[origin] = members
	}
	members[id] = name
}

// namesLocked returns the names of the room's members, sorted.
//
// The caller holds r.mu.
func (r *room) namesLocked() []string {
	names := []string{}
	for _, members := range r.roster {
		for _, name := range members {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// sendLocked sends v, as JSON, to this server's members in the room,
// waiting for none of them.
//
// The caller holds r.mu.
func (r *room) sendLocked(v any) {
	pm, err := websocket.NewPreparedMessage(websocket.MessageText, encode(v))
	if err != nil {
		panic(err) // only for a bad message type
	}
	pm.Broadcast(r.conns...)
}

// presence is a join or a leave, as members other than the joiner
// receive it.
type presence struct {
	Type string `json:"type"`
	Name string `json:"name"`
}

// roll is a list of the room's members: in a member's own join, or when
// another server's members turn out other than its joins and leaves told.
type roll struct {
	Type    string   `json:"type"`
	Name    string   `json:"name,omitempty"`
	Members []string `json:"members"`
}

// message is a chat message as members receive it.
type message struct {
	Type string `json:"type"`
	From string `json:"from"`
	Text string `json:"text"`
}

func encode(v any) []byte {
	p, err := json.Marshal(v)
	if err != nil {
		panic(err) // strings and slices of them always encode
	}
	return p
}
