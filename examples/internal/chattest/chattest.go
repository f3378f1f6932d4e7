// Package chattest runs the chat commands as processes and joins their
// rooms, for the tests of examples/chat and examples/chat-redis.
package chattest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/examples/internal/cmdtest"
)

// Wait bounds every wait of the tests that has no bound of its own.
const Wait = 10 * time.Second

// Server is a chat command running as a process.
type Server struct {
	URL            string // of the page
	cmd            *exec.Cmd
	stdout, stderr cmdtest.Output
	exited         chan struct{} // closed once the process has exited
}

// readyLine is what the command prints once it listens.
var readyLine = regexp.MustCompile(`open (http://\S+/) in a browser`)

// Unbounded are the flags that let a member say as much as it likes, for
// tests that send faster than people type.
var Unbounded = []string{"-msg-rate", "-1", "-byte-rate", "-1"}

// OneAddress are the flags that let one address have any number of
// members, joining as often as it likes, for tests of many members:
// every member of the tests comes from 127.0.0.1.
var OneAddress = []string{"-addr-conns", "-1", "-addr-join-rate", "-1"}

// Start runs the command at path with args and -addr 127.0.0.1:0, and
// waits until it listens. It is killed when the test ends if it has not
// exited by then.
func Start(t *testing.T, path string, args ...string) *Server {
	t.Helper()
	s := &Server{cmd: exec.Command(path, append([]string{"-addr", "127.0.0.1:0"}, args...)...), exited: make(chan struct{})}
	// The race detector sleeps a second before a clean exit, by default.
	s.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	s.cmd.Stdout = &s.stdout
	s.cmd.Stderr = &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.exited
		if t.Failed() {
			t.Logf("chat server's log:\n%s", s.stderr.String())
		}
	})
	deadline := time.Now().Add(Wait)
	for {
		if m := readyLine.FindStringSubmatch(s.stdout.String()); m != nil {
			s.URL = m[1]
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("the chat server exited: %v\n%s", s.cmd.ProcessState, s.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the chat server is not listening after %v:\n%s", Wait, s.stderr.String())
		}
	}
}

// WS returns the URL at which name joins room.
func (s *Server) WS(room, name string) string {
	return "ws" + strings.TrimPrefix(s.URL, "http") + "ws?room=" + url.QueryEscape(room) + "&name=" + url.QueryEscape(name)
}

// Signal sends sig to the process.
func (s *Server) Signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// ExitCode waits up to d for the process to exit and returns its exit
// code.
func (s *Server) ExitCode(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("the chat server still runs %v later", d)
		return 0
	}
}

// Log returns what the process wrote to its standard error.
func (s *Server) Log() string { return s.stderr.String() }

// AwaitLog waits, for at most Wait, until the process has written want
// to its standard error, and returns what it wrote. A line the server
// logs after what a test waited for (a member's leave, say) may come
// later than the test's next look.
func (s *Server) AwaitLog(want string) string {
	deadline := time.Now().Add(Wait)
	for {
		log := s.Log()
		if strings.Contains(log, want) || time.Now().After(deadline) {
			return log
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Message is a message a member receives, any of its kinds.
type Message struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Members []string `json:"members"`
	From    string   `json:"from"`
	Text    string   `json:"text"`
}

// Member is a connection to a room whose messages are read and kept as
// they come.
type Member struct {
	Name string
	c    *websocket.Conn

	mu      sync.Mutex
	got     []Message     // guarded by mu
	changed chan struct{} // guarded by mu: closed and replaced when got grows or reading ends
	err     error         // guarded by mu: why reading ended
	done    chan struct{} // closed once reading has ended
}

// Join joins name to a room at url (a Server's WS) and waits for its own
// join, which must be the first message it gets. The connection is closed
// when the test ends.
func Join(t *testing.T, url, name string) *Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("%s joining: %v", name, err)
	}
	m := &Member{Name: name, c: c, changed: make(chan struct{}), done: make(chan struct{})}
	go m.read()
	t.Cleanup(func() {
		c.CloseNow()
		<-m.done
	})
	m.WaitFor(t, "its own join", func(got []Message) bool { return len(got) > 0 })
	if got := m.Messages()[0]; got.Type != "join" || got.Name != name {
		t.Fatalf("%s: first message %+v, want its own join", name, got)
	}
	return m
}

func (m *Member) read() {
	defer close(m.done)
	for {
		_, p, err := m.c.Read(context.Background())
		var msg Message
		if err == nil {
			if jerr := json.Unmarshal(p, &msg); jerr != nil {
				err = fmt.Errorf("decoding %q: %w", p, jerr)
			}
		}
		m.mu.Lock()
		if err != nil {
			m.err = err
		} else {
			m.got = append(m.got, msg)
		}
		close(m.changed)
		m.changed = make(chan struct{})
		m.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Send sends text to the room.
func (m *Member) Send(t *testing.T, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := m.c.Write(ctx, websocket.MessageText, []byte(text)); err != nil {
		t.Errorf("%s sending: %v", m.Name, err)
	}
}

// Write sends a message of any type, for the tests of what members may
// not send.
func (m *Member) Write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	return m.c.Write(ctx, typ, p)
}

// Messages returns what the member has received so far.
func (m *Member) Messages() []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Message(nil), m.got...)
}

// Texts returns the chat messages the member has received so far, each as
// "from: text".
func (m *Member) Texts() []string { return Texts(m.Messages()) }

// Texts returns the chat messages of got, each as "from: text".
func Texts(got []Message) []string {
	var texts []string
	for _, msg := range got {
		if msg.Type == "message" {
			texts = append(texts, msg.From+": "+msg.Text)
		}
	}
	return texts
}

// Roster returns the room's members as the messages got tell them, a
// page's way: the list of the member's own join, the joins and leaves of
// others after it, and "members", which replaces it. It is sorted, a name
// as many times as members bear it.
func Roster(got []Message) []string {
	var names []string
	for _, msg := range got {
		switch {
		case msg.Type == "members" || msg.Type == "join" && msg.Members != nil:
			names = slices.Clone(msg.Members)
		case msg.Type == "join":
			i, _ := slices.BinarySearch(names, msg.Name)
			names = slices.Insert(names, i, msg.Name)
		case msg.Type == "leave":
			if i, ok := slices.BinarySearch(names, msg.Name); ok {
				names = slices.Delete(names, i, i+1)
			}
		}
	}
	return names
}

// WaitFor waits until cond holds for what the member has received, for
// at most Wait. cond must not call the member's methods.
func (m *Member) WaitFor(t *testing.T, what string, cond func([]Message) bool) {
	t.Helper()
	m.WaitForWithin(t, Wait, what, cond)
}

// WaitForWithin is WaitFor, bounded by d.
func (m *Member) WaitForWithin(t *testing.T, d time.Duration, what string, cond func([]Message) bool) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		m.mu.Lock()
		ok, err, changed, n := cond(m.got), m.err, m.changed, len(m.got)
		m.mu.Unlock()
		if ok {
			return
		}
		if err != nil {
			t.Fatalf("%s: reading ended (%v) before %s; got %d messages", m.Name, err, what, n)
		}
		select {
		case <-changed:
		case <-timer.C:
			got := m.Messages()
			t.Fatalf("%s: no %s after %v; got %d messages, the last: %.300v", m.Name, what, d, n, got[max(0, len(got)-5):])
		}
	}
}

// Closed waits for reading to end and returns why.
func (m *Member) Closed(t *testing.T) error {
	t.Helper()
	select {
	case <-m.done:
	case <-time.After(Wait):
		t.Fatalf("%s: still connected after %v", m.Name, Wait)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Close closes the member's connection with 1000.
func (m *Member) Close() error {
	return m.c.Close(websocket.StatusNormalClosure, "")
}

// Say has every member send each messages "NAME says I", I counting from
// 0, all members at once, each pausing pause between its messages; sent,
// if not nil, counts the messages sent. It returns once all are sent.
func Say(t *testing.T, members []*Member, each int, pause time.Duration, sent *atomic.Int64) {
	t.Helper()
	var sending sync.WaitGroup
	for _, m := range members {
		sending.Go(func() {
			for i := range each {
				if i > 0 {
					time.Sleep(pause)
				}
				m.Send(t, fmt.Sprintf("%s says %d", m.Name, i))
				if sent != nil {
					sent.Add(1)
				}
			}
		})
	}
	sending.Wait()
}

// CheckRoom waits, for at most d, until every member of a room has
// received each messages from each of them (as Say sends them), and
// checks that it received those exactly: from no one else, none twice,
// each sender's in order, and all members in the same order.
func CheckRoom(t *testing.T, room []*Member, each int, d time.Duration) {
	t.Helper()
	want := len(room) * each
	for _, m := range room {
		m.WaitForWithin(t, d, fmt.Sprintf("%d messages", want), func(got []Message) bool {
			return len(Texts(got)) >= want
		})
	}
	inRoom := make(map[string]bool)
	for _, m := range room {
		inRoom[m.Name] = true
	}
	first := room[0].Texts()
	for _, m := range room {
		texts := m.Texts()
		if len(texts) != want {
			t.Errorf("%s got %d messages, want %d", m.Name, len(texts), want)
		}
		next := make(map[string]int) // sender to the number expected next
		for _, text := range texts {
			var from, sender string
			var i int
			if _, err := fmt.Sscanf(text, "%s %s says %d", &from, &sender, &i); err != nil || from != sender+":" {
				t.Fatalf("%s got %q", m.Name, text)
			}
			if !inRoom[sender] {
				t.Fatalf("%s got %q from another room", m.Name, text)
			}
			if i != next[sender] {
				t.Fatalf("%s got %q after message %d of %s", m.Name, text, next[sender]-1, sender)
			}
			next[sender]++
		}
		if !slices.Equal(texts, first) {
			t.Errorf("%s and %s got the room's messages in different orders", m.Name, room[0].Name)
		}
	}
}

// HasLeave reports whether got holds the leave of name.
func HasLeave(name string) func([]Message) bool {
	return func(got []Message) bool {
		for _, msg := range got {
			if msg.Type == "leave" && msg.Name == name {
				return true
			}
		}
		return false
	}
}

// Raw is a member that speaks the protocol by hand over TCP, to do what a
// well-behaved client would not: stop reading, or never answer a ping.
type Raw struct {
	Conn net.Conn
	R    *bufio.Reader
}

// JoinRaw opens a TCP connection to url with a receive buffer of rcvbuf
// bytes (0 leaves the system's), completes the opening handshake, and
// reads nothing more. The connection is closed when the test ends.
func JoinRaw(t *testing.T, wsURL string, rcvbuf int) *Raw {
	t.Helper()
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, Wait)
	if err != nil {
		t.Fatal(err)
	}
	if rcvbuf > 0 {
		if err := conn.(*net.TCPConn).SetReadBuffer(rcvbuf); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { conn.Close() })
	key := make([]byte, 16)
	rand.Read(key)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		u.RequestURI(), u.Host, base64.StdEncoding.EncodeToString(key))
	conn.SetReadDeadline(time.Now().Add(Wait))
	// One byte at a time, so that nothing past the response is read.
	var head []byte
	one := make([]byte, 1)
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if _, err := conn.Read(one); err != nil {
			t.Fatalf("reading the handshake response: %v (got %q)", err, head)
		}
		head = append(head, one[0])
	}
	conn.SetReadDeadline(time.Time{})
	if !strings.HasPrefix(string(head), "HTTP/1.1 101 ") {
		t.Fatalf("handshake response: %q", head)
	}
	return &Raw{Conn: conn, R: bufio.NewReader(conn)}
}

// Frame is a frame a Raw member read.
type Frame struct {
	Op      byte // 1 text, 2 binary, 8 close, 9 ping, 10 pong
	Payload []byte
}

// ReadFrame reads the next frame the server sent, which must be whole
// and unmasked, with a payload of at most 1 MiB.
func (r *Raw) ReadFrame() (Frame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r.R, h[:]); err != nil {
		return Frame{}, err
	}
	if h[0]&0xf0 != 0x80 || h[1]&0x80 != 0 {
		return Frame{}, fmt.Errorf("frame header %x: want FIN, no RSV bits, no mask", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r.R, b[:]); err != nil {
			return Frame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r.R, b[:]); err != nil {
			return Frame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return Frame{}, fmt.Errorf("frame of %d bytes", n)
	}
	f := Frame{Op: h[0] & 0x0f, Payload: make([]byte, n)}
	_, err := io.ReadFull(r.R, f.Payload)
	return f, err
}
