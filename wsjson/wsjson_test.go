package wsjson

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/internal/leakcheck"
)

// TestMain fails the run when goroutines outlive the tests.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

// waitLimit bounds every wait of these tests.
const waitLimit = 20 * time.Second // generous: a loaded machine, under the race detector

// connPair dials a loopback server whose handler hands its Conn to the
// test and keeps it open until the test ends.
func connPair(t testing.TB) (client, server *websocket.Conn) {
	t.Helper()
	conns := make(chan *websocket.Conn, 1)
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		conns <- c
		<-release
	}))
	t.Cleanup(s.Close)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http"), nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { client.CloseNow() })
	t.Cleanup(func() { close(release) })
	select {
	case server = <-conns:
	case <-time.After(waitLimit):
		t.Fatal("no connection at the server")
	}
	return client, server
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

type point struct {
	X, Y int
}

type record struct {
	Name   string            `json:"name"`
	Tags   []string          `json:"tags"`
	Score  float64           `json:"score"`
	Where  *point            `json:"where,omitempty"`
	Extras map[string]string `json:"extras"`
}

// TestRoundTrip: Write sends exactly json.Marshal's bytes as one text
// message, and Read decodes them back to an equal value.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	ctx := testContext(t)
	for _, v := range []any{
		record{Name: "ann", Tags: []string{"a", "b"}, Score: 2.5, Where: &point{1, -2}, Extras: map[string]string{"k": "v"}},
		"text with <html> & \"quotes\", é and 😀 and a \n newline",
		42,
		true,
		(*point)(nil),
		[]int{},
		map[string]any{"nested": map[string]any{"list": []any{1.0, "two", nil}}},
	} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := Write(ctx, client, v); err != nil {
			t.Fatalf("Write(%#v): %v", v, err)
		}
		typ, p, err := server.Read(ctx)
		if err != nil || typ != websocket.MessageText || string(p) != string(want) {
			t.Fatalf("the peer read %v %q, %v; want text %q", typ, p, err, want)
		}
		if err := server.Write(ctx, websocket.MessageText, p); err != nil {
			t.Fatal(err)
		}
		got := reflect.New(reflect.TypeOf(v))
		if err := Read(ctx, client, got.Interface()); err != nil {
			t.Fatalf("Read: %v", err)
		}
		if !reflect.DeepEqual(got.Elem().Interface(), v) {
			t.Fatalf("Read %#v, want %#v", got.Elem().Interface(), v)
		}
	}
}

// large is a value whose encoding takes 1 MiB and more.
func large() record {
	r := record{Name: strings.Repeat("0123456789abcdef", 1<<16), Extras: map[string]string{}}
	for i := range 1000 {
		r.Tags = append(r.Tags, strings.Repeat("t", i%50))
	}
	return r
}

// TestLargeValue: a value of over 1 MiB goes through whole, in frames.
func TestLargeValue(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	ctx := testContext(t)
	v := large()
	want, _ := json.Marshal(v)
	echoed := make(chan error, 1)
	go func() {
		_, p, err := server.Read(ctx)
		if err == nil && string(p) != string(want) {
			err = errors.New("the message is not json.Marshal's encoding")
		}
		if err == nil {
			err = server.Write(ctx, websocket.MessageText, p)
		}
		echoed <- err
	}()
	if err := Write(ctx, client, v); err != nil {
		t.Fatalf("Write: %v", err)
	}
	var got record
	if err := Read(ctx, client, &got); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if err := <-echoed; err != nil {
		t.Fatalf("peer: %v", err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Fatal("the value read differs from the one written")
	}
}

// TestReadErrors: a text message that is not one JSON value is an error
// of its own, and the connection goes on: the next message is read.
func TestReadErrors(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	ctx := testContext(t)
	type target struct {
		N int `json:"n"`
	}
	for _, tc := range []struct {
		msg  string
		want string // the error; "" for none
	}{
		{` {"n":1} ` + "\t\r\n", ""},
		{``, "websocket: json: unexpected end of JSON input"},
		{`  `, "websocket: json: unexpected end of JSON input"},
		{`{"n":`, "websocket: json: unexpected end of JSON input"},
		{`{"n":1} x`, "websocket: json: invalid character 'x' after top-level value"},
		{`{"n":1}{"n":2}`, "websocket: json: invalid character '{' after top-level value"},
		{`{"n":1} 2`, "websocket: json: invalid character '2' after top-level value"},
		{`{"n":"one"}`, "websocket: json: cannot unmarshal string into Go struct field target.n of type int"},
		// encoding/json quotes the peer's number whole: the error is cut
		// (it was 100 KB long).
		{`{"n":` + strings.Repeat("9", 100_000) + `}`, "websocket: json: cannot unmarshal number " + strings.Repeat("9", 512-len("cannot unmarshal number ")) + "..."},
	} {
		for _, m := range []string{tc.msg, `{"n":7}`} {
			if err := server.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		var v target
		err := Read(ctx, client, &v)
		switch {
		case tc.want == "" && (err != nil || v.N != 1):
			t.Fatalf("Read(%q) = %+v, %v; want n 1", tc.msg, v, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Fatalf("Read(%.100q): %.600v, want %q", tc.msg, err, tc.want)
		}
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		if tc.want != "" && !errors.As(err, &syntax) && !errors.As(err, &typ) {
			t.Fatalf("Read(%q): %v wraps no encoding/json error", tc.msg, err)
		}
		v = target{}
		if err := Read(ctx, client, &v); err != nil || v.N != 7 {
			t.Fatalf("Read after %q: %+v, %v; want n 7", tc.msg, v, err)
		}
	}
}

// TestReadBinary: a binary message is an error that says what to do, and
// is dropped: the next Read reads the message after it.
func TestReadBinary(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	ctx := testContext(t)
	server.Write(ctx, websocket.MessageBinary, []byte(`{"n":1}`))
	server.Write(ctx, websocket.MessageText, []byte(`{"n":2}`))
	var v struct{ N int }
	if err := Read(ctx, client, &v); !errors.Is(err, ErrBinaryMessage) || v.N != 0 {
		t.Fatalf("Read of a binary message: %+v, %v; want %v", v, err, ErrBinaryMessage)
	}
	if !strings.HasPrefix(ErrBinaryMessage.Error(), "websocket: json: ") || !strings.Contains(ErrBinaryMessage.Error(), "Conn.Read") {
		t.Fatalf("%q: want the prefix and a way out", ErrBinaryMessage)
	}
	if err := Read(ctx, client, &v); err != nil || v.N != 2 {
		t.Fatalf("Read after it: %+v, %v; want n 2", v, err)
	}
}

// TestReadLimit: the connection's read limit applies; a message over it
// fails the connection with 1009.
func TestReadLimit(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	ctx := testContext(t)
	client.SetReadLimit(1000)
	msg := `{"s":"` + strings.Repeat("x", 2000) + `"}`
	if err := server.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	peer := make(chan error, 1)
	go func() {
		_, _, err := server.Read(ctx)
		peer <- err
	}()
	var v struct{ S string }
	err := Read(ctx, client, &v)
	if !errors.Is(err, websocket.ErrMessageTooBig) || websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("Read: %v, want ErrMessageTooBig and close 1009", err)
	}
	if strings.Count(err.Error(), "websocket: ") != 1 {
		t.Fatalf("%q: want one prefix", err)
	}
	if err := <-peer; websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("peer Read: %v, want the close frame 1009", err)
	}
}

// TestReadNeedsPointer: Read into something it cannot fill fails before
// it reads, so the message waits for the next Read.
func TestReadNeedsPointer(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	ctx := testContext(t)
	server.Write(ctx, websocket.MessageText, []byte(`{"n":5}`))
	var v struct{ N int }
	for _, bad := range []any{v, nil, (*struct{ N int })(nil)} {
		err := Read(ctx, client, bad)
		if err == nil || !strings.HasPrefix(err.Error(), "websocket: json: Read needs a non-nil pointer") {
			t.Fatalf("Read(%#v): %v, want an error", bad, err)
		}
	}
	if err := Read(ctx, client, &v); err != nil || v.N != 5 {
		t.Fatalf("Read: %+v, %v; want n 5", v, err)
	}
}

// TestWriteUnsupported: a value encoding/json cannot encode is an error,
// and nothing is sent.
func TestWriteUnsupported(t *testing.T) {
	t.Parallel()
	client, server := connPair(t)
	ctx := testContext(t)
	err := Write(ctx, client, map[string]any{"c": make(chan int)})
	var ute *json.UnsupportedTypeError
	if !errors.As(err, &ute) || err.Error() != "websocket: json: unsupported type: chan int" {
		t.Fatalf("Write: %v, want websocket: json: unsupported type: chan int", err)
	}
	if err := Write(ctx, client, point{3, 4}); err != nil {
		t.Fatal(err)
	}
	if _, p, err := server.Read(ctx); err != nil || string(p) != `{"X":3,"Y":4}` {
		t.Fatalf("the peer read %q, %v; want the second value first", p, err)
	}
}

// TestConnErrors: the connection's errors come back as the Conn reports
// them, with one prefix.
func TestConnErrors(t *testing.T) {
	t.Parallel()
	client, _ := connPair(t)
	ctx := testContext(t)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	var v point
	if err := Read(cancelled, client, &v); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with an ended context: %v", err)
	}
	client.CloseNow()
	for name, err := range map[string]error{
		"Read":  Read(ctx, client, &v),
		"Write": Write(ctx, client, v),
	} {
		if !errors.Is(err, websocket.ErrClosed) || strings.Count(err.Error(), "websocket: ") != 1 {
			t.Fatalf("%s after CloseNow: %v, want ErrClosed with one prefix", name, err)
		}
	}
}

// BenchmarkRoundTrip writes a small value, has it echoed, and reads it
// back.
func BenchmarkRoundTrip(b *testing.B) {
	client, server := connPair(b)
	ctx := context.Background()
	go func() {
		for {
			typ, p, err := server.Read(ctx)
			if err != nil || server.Write(ctx, typ, p) != nil {
				return
			}
		}
	}()
	v := point{3, 4}
	b.ReportAllocs()
	for b.Loop() {
		if err := Write(ctx, client, v); err != nil {
			b.Fatal(err)
		}
		if err := Read(ctx, client, &v); err != nil {
			b.Fatal(err)
		}
	}
}
