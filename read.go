package websocket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"sync"

	"github.com/rfc6455/websocket/internal/flate"
)

const (
	// directReadMin is the smallest caller slice that a payload is read into
	// straight from the transport, skipping the read buffer: past a read
	// buffer's worth, the copy saved matters more than the calls.
	directReadMin = readBufferSize
	// A message is gathered in chunks of minReadChunk bytes, then of
	// twice that, and so on up to maxReadChunk: each new chunk at most as
	// large as what arrived before it, so that a peer that stops sending
	// mid-message has the reader hold at most twice what it sent.
	minReadChunk     = 4 << 10
	maxReadChunk     = 64 << 10
	readChunkClasses = 5 // minReadChunk << (readChunkClasses-1) == maxReadChunk
)

// readChunkPools holds the chunks of readWholeLocked, a pool a size.
var readChunkPools [readChunkClasses]sync.Pool

func init() {
	for i := range readChunkPools {
		size := minReadChunk << i
		readChunkPools[i].New = func() any { b := make([]byte, size); return &b }
	}
}

// chunkList is the list of the chunks that readWholeLocked gathers a
// message in. The lists are pooled rather than on readWholeLocked's
// stack: a Read loop's goroutine keeps the stack its deepest call grew it
// to, and the handler it runs in is already deep in net/http.
type chunkList struct {
	chunks  []*[]byte
	arrived int // bytes of the message in the chunks
	used    int // bytes in the last chunk
}

// chunkLists holds the chunk lists, each made with room for 32 chunks
// (about 1.8 MiB); one that grew past that goes back grown.
var chunkLists = sync.Pool{New: func() any { return &chunkList{chunks: make([]*[]byte, 0, 32)} }}

// chunkClass returns the index in readChunkPools of the largest chunk
// size not over max(n, minReadChunk).
func chunkClass(n int) int {
	return min(bits.Len(uint(max(n, minReadChunk)/minReadChunk))-1, readChunkClasses-1)
}

// messageReader reads one message; see Conn.Reader. It is the Conn
// itself, as another type, so that it costs the Conn only the context it
// reads with (readerCtx).
type messageReader Conn

// Reader waits for the next data message and returns its type and a reader
// of its payload. The reader returns io.EOF at the message's end and is
// valid until the next call to Reader, Read or ReadAppend, which discards
// what was left unread of it (still checking it, so a bad message fails the
// connection). Do not use it after that: the connection hands out the same
// reader for every message, so a late Read would take the bytes of a later
// message, from the reader returned with it. io.Copy from the reader
// copies through a pooled buffer (its WriteTo), allocating none per
// message.
//
// If ctx ends while Reader waits for a message, Reader returns ctx's error
// and the connection stays usable. The reader keeps using ctx: if it ends
// once the message has begun (the header of its first frame has
// arrived), the rest of the message cannot be delivered, and the
// connection is failed with StatusPolicyViolation; after CloseWrite, it
// is closed with StatusAbnormalClosure, as Read explains.
func (c *Conn) Reader(ctx context.Context) (MessageType, io.Reader, error) {
	if s := c.srv.Load(); s != nil {
		return 0, nil, s.readErr()
	}
	typ, err := c.beginRead(ctx, false)
	if err != nil {
		return 0, nil, err
	}
	defer c.readUnlock()
	c.readerCtx = ctx
	return typ, (*messageReader)(c), nil
}

// Read waits for the next data message and returns it whole, in a new
// slice allocated once, at the message's size, when enough of the message
// has arrived to justify it (a large one is gathered in pooled buffers
// until then). Reading messages into a buffer of the caller's is done with
// ReadAppend or Reader.
//
// If ctx ends while Read waits for a message, Read returns ctx's error and
// the connection stays usable. If ctx ends once a message has begun (the
// header of its first frame has arrived), the connection is failed with
// StatusPolicyViolation, and Read returns at once; but once Close has
// begun, which drops the message, Read returns ctx's error alone and
// Close reads on to the peer's answer. After CloseWrite, whose close frame
// no 1008 may follow, the connection is closed at once instead, the
// message and the peer's answer lost: Read and every later call report
// StatusAbnormalClosure (RFC 6455 §7.1.5), wrapping ctx's error. A ctx
// that has ended before the call makes it return ctx's error, reading
// nothing.
func (c *Conn) Read(ctx context.Context) (MessageType, []byte, error) {
	// ReadAppend's body rather than a call to it: a frame less on the
	// stack of the goroutine that waits here.
	if s := c.srv.Load(); s != nil {
		return 0, nil, s.readErr()
	}
	return c.readAppend(ctx, nil, false)
}

// ReadAppend reads the next message as Read does, appending its payload to
// dst and returning the extended slice. Passing the previous result
// resliced to zero length reuses its memory, so a steady stream of messages
// is read without allocating:
//
//	buf := make([]byte, 0, 4096)
//	for {
//		typ, msg, err := c.ReadAppend(ctx, buf[:0])
//		...
//		buf = msg
//	}
//
// On error it returns dst as given.
func (c *Conn) ReadAppend(ctx context.Context, dst []byte) (MessageType, []byte, error) {
	if s := c.srv.Load(); s != nil {
		return 0, dst, s.readErr()
	}
	return c.readAppend(ctx, dst, false)
}

// errServed and errClosingRead are what the reading methods return on a
// connection given to Serve or to CloseRead (readErr).
var (
	errServed      = errors.New("websocket: read: the connection is served by Serve, which alone reads it")
	errClosingRead = errors.New("websocket: read: the connection is read by CloseRead, which alone reads it")
)

// readErr is what the reading methods return on s's connection: the error
// names the call the program made, Serve or CloseRead.
func (s *server) readErr() error {
	if s.noData {
		return errClosingRead
	}
	return errServed
}

// readAppend is ReadAppend, and Serve's read when untilIdle is set: then
// it ends with errScanStopped, having read no message, once the control
// frames it acted on leave no input buffered, so that Serve waits for more
// as it does between messages rather than in a read.
func (c *Conn) readAppend(ctx context.Context, dst []byte, untilIdle bool) (MessageType, []byte, error) {
	typ, err := c.beginRead(ctx, untilIdle)
	if err != nil {
		return 0, dst, err
	}
	defer c.readUnlock()
	p, rest, base := dst, dst != nil, len(dst)
	if dst == nil {
		p, rest, err = c.readWholeLocked(ctx)
	}
	if rest {
		p, err = c.readRestLocked(ctx, p, base)
	}
	if err != nil {
		return 0, dst, err
	}
	return typ, p, nil
}

// beginRead takes the read lock and reads up to the next message (see
// readAppend for untilIdle). When it succeeds, the caller holds readMu and
// lets it go with readUnlock.
func (c *Conn) beginRead(ctx context.Context, untilIdle bool) (MessageType, error) {
	if err := c.lock(ctx, &c.readMu, "read"); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		// A free lock is taken whatever ctx says: a read that starts with
		// ctx ended must not begin a message it cannot finish.
		c.readUnlock()
		return 0, opErr("read", err)
	}
	typ, err := c.nextMessageLocked(ctx, untilIdle)
	if err != nil {
		c.readUnlock()
		return 0, err
	}
	return typ, nil
}

// readUnlock lets the read lock go, dropping the read buffer if it holds
// nothing unread, and wakes the Pings that wait for the reader to let go.
func (c *Conn) readUnlock() {
	c.readRelease()
	if c.pingDeferred.Load() {
		c.wakeDeferredPings()
	}
}

// readRelease is readUnlock without waking the Pings.
func (c *Conn) readRelease() {
	pending := !c.rb.isEmpty()
	if !pending {
		c.rb.release()
	}
	if c.inputPending.Load() != pending {
		c.inputPending.Store(pending)
	}
	if c.isClosed() {
		c.releaseInflateLocked()
	}
	c.releaseWatch(watchRead)
	c.readMu.unlock()
	if c.inflate != nil && c.isClosed() && c.readMu.tryLock() {
		// Closed after the look above, by a closeTransport that found
		// readMu still held and left the decompressor to us.
		c.releaseInflateLocked()
		c.readMu.unlock()
	}
}

func (mr *messageReader) Read(p []byte) (int, error) {
	c := (*Conn)(mr)
	if err := c.lock(c.readerCtx, &c.readMu, "read"); err != nil {
		return 0, err
	}
	defer c.readUnlock()
	if !c.msgOpen {
		return 0, io.EOF
	}
	if c.isClosed() || c.discard.Load() {
		return 0, c.closedErr("read")
	}
	n, err := c.readMessageLocked(c.readerCtx, p)
	if err != nil && !c.isClosed() {
		c.msgOpen = false
	}
	// A message cut short by the end of the connection stays open, so
	// that later Reads report that end rather than io.EOF.
	return n, err
}

// WriteTo writes the rest of the message to w: io.Copy from the reader
// uses it, with a pooled buffer rather than a new 32 KiB one for every
// message. It returns the bytes written, and the error of the read or of
// the write that stopped it (not io.EOF, the message's end).
func (mr *messageReader) WriteTo(w io.Writer) (int64, error) { return copyPooled(w, mr) }

// readMessageLocked reads the next bytes of the current message into p,
// returning io.EOF at its end.
//
// The caller holds readMu.
func (c *Conn) readMessageLocked(ctx context.Context, p []byte) (int, error) {
	for c.msgCompressed {
		n, err := c.inflateLocked(ctx, p)
		if err != flate.ErrInputPending {
			return n, err
		}
		if c.frameLeft == 0 && !c.frame.fin {
			// The decoder needs the next frame, which did not come alone
			// and whole (inflateSource): read here, as a plain
			// message's is, with the control frames before it.
			err = c.nextDataFrameLocked(ctx)
		} else {
			err = c.inflateWaitLocked(ctx)
		}
		if err != nil {
			c.dropInflateLocked()
			return 0, err
		}
	}
	for c.frameLeft == 0 {
		if c.frame.fin {
			return 0, c.endMessageLocked()
		}
		if err := c.nextDataFrameLocked(ctx); err != nil {
			return 0, err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.readRawLocked(ctx, p)
	if err != nil {
		return 0, err
	}
	if err := c.checkTextLocked(p[:n]); err != nil {
		return 0, err
	}
	if c.frameLeft == 0 && c.frame.fin {
		return n, c.endMessageLocked()
	}
	return n, nil
}

// nextMessageLocked discards what is left of the previous message, then
// reads up to the first data frame of the next one; with untilIdle, it
// stops with errScanStopped instead when a control frame leaves nothing
// buffered.
//
// The caller holds readMu.
func (c *Conn) nextMessageLocked(ctx context.Context, untilIdle bool) (MessageType, error) {
	if c.isClosed() {
		return 0, c.closedErr("read")
	}
	if c.msgOpen {
		if err := c.discardMessageLocked(ctx); err != nil {
			return 0, err
		}
	}
	for {
		var h header
		var err error
		if untilIdle {
			h, err = c.scanFramesLocked(ctx, c.rb.isEmpty, false)
			if err == errScanStopped {
				return 0, err
			}
		} else {
			h, err = c.readFrameLocked(ctx)
		}
		if err != nil {
			return 0, c.readErrLocked(ctx, err, false)
		}
		if s := c.srv.Load(); s != nil && s.refusing && c.refusesDataLocked() {
			return 0, c.failLocked(protocolErr(StatusPolicyViolation, "data message on a connection that reads none"))
		}
		c.msgOp = h.op
		c.msgCompressed = h.rsv&rsv1 != 0
		c.msgSize = 0
		c.msgOpen = true
		c.utf8.reset()
		if err := c.startFrameLocked(h); err != nil {
			return 0, err
		}
		if !c.discard.Load() {
			return MessageType(c.msgOp), nil
		}
		// Close has started: deliver nothing more.
		if err := c.discardMessageLocked(ctx); err != nil {
			return 0, err
		}
	}
}

// nextFrameLocked reads the next frame of the message being read.
//
// The caller holds readMu.
func (c *Conn) nextFrameLocked(ctx context.Context) error {
	h, err := c.readFrameLocked(ctx)
	if err == errPongQueued {
		return err
	}
	if err != nil {
		return c.readErrLocked(ctx, err, true)
	}
	return c.startFrameLocked(h)
}

// nextDataFrameLocked is nextFrameLocked for a reader of the message,
// which writes on the way the pongs that pings between its frames called
// for (errPongQueued), from this depth rather than the ping's.
//
// The caller holds readMu.
func (c *Conn) nextDataFrameLocked(ctx context.Context) error {
	for {
		err := c.nextFrameLocked(ctx)
		if err != errPongQueued {
			return err
		}
		if !c.rb.isEmpty() {
			// More frames are at hand: the pong waits for them, the
			// queue's timer armed (controlLocked).
			continue
		}
		c.flushQueueAsReader(ctx)
		if c.isClosed() {
			// Writing the pong failed, and closed the connection.
			return c.closedErr("read")
		}
	}
}

// refusesDataLocked reports whether a data message now fails the
// connection, under CloseRead: not once our close frame is out, or Close
// has begun, when the peer may send what it wrote before it saw our
// close, which is dropped (RFC 6455 §5.5.1 has it read on until its close
// frame).
//
// The caller holds readMu.
func (c *Conn) refusesDataLocked() bool {
	if c.discard.Load() {
		return false
	}
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	return !c.closeSent
}

// startFrameLocked makes h the data frame being read, once the message it
// belongs to stays within the read limit.
//
// The caller holds readMu.
func (c *Conn) startFrameLocked(h header) error {
	if limit, ok := c.frameFitsLocked(h); !ok {
		what := "message exceeds the read limit"
		if c.msgCompressed {
			what = "compressed message too long for the read limit"
		}
		pe := protocolErr(StatusMessageTooBig, fmt.Sprintf("%s of %d bytes", what, limit))
		pe.err = ErrMessageTooBig
		return c.failLocked(pe)
	}
	c.setFrameLocked(h)
	return nil
}

// frameFitsLocked reports whether the data frame h keeps its message
// within the read limit, which it returns.
//
// The caller holds readMu.
func (c *Conn) frameFitsLocked(h header) (int64, bool) {
	limit := c.readLimit.Load()
	if limit < 0 {
		return limit, true
	}
	bound := limit
	if c.msgCompressed {
		// The limit is on what the message inflates to, checked as it
		// does; this only bounds the input.
		bound = compressedLimit(limit)
	}
	return limit, c.countedLocked(h) <= bound-c.msgSize
}

// countedLocked is what the data frame h counts toward msgSize: its
// length, or compressedSize for a frame of a compressed message.
//
// The caller holds readMu.
func (c *Conn) countedLocked(h header) int64 {
	if c.msgCompressed {
		return compressedSize(h)
	}
	return h.length
}

// compressedSize is what the frame h of a compressed message counts
// against the bound of compressedLimit: one byte, and what it carries
// beyond compressedFrameSlack. A sender that flushes its compressor at
// the end of every fragment, as RFC 7692 allows, adds an empty stored
// block (5 bytes), and a block of its own that may be stored (5 more) and
// start on a byte's boundary (1 more), to every frame: a message of 4,000
// one-byte fragments compressed so, 28 KB, was refused under a read limit
// of 4,096 bytes. The byte each frame counts bounds a message of tiny
// frames too.
func compressedSize(h header) int64 { return max(h.length-compressedFrameSlack, 0) + 1 }

const compressedFrameSlack = 32

// setFrameLocked makes h, which startFrameLocked checked, the data frame
// being read.
//
// The caller holds readMu.
func (c *Conn) setFrameLocked(h header) {
	c.msgSize += c.countedLocked(h)
	c.frame = h
	c.frameLeft = h.length
	c.maskPos = 0
	c.rs.inMessage = !h.fin
}

// endMessageLocked checks a message that was read to its end and returns
// io.EOF, or the error that failed the connection.
//
// The caller holds readMu.
func (c *Conn) endMessageLocked() error {
	c.msgOpen = false
	if c.msgOp == opText && !c.utf8.complete() {
		return c.failLocked(protocolErr(StatusInvalidFramePayloadData, "text message ends inside a UTF-8 sequence"))
	}
	return io.EOF
}

// checkTextLocked feeds delivered bytes of a text message to the UTF-8
// validator, failing the connection at the first invalid byte.
//
// The caller holds readMu.
func (c *Conn) checkTextLocked(p []byte) error {
	if c.msgOp == opText && !c.utf8.write(p) {
		return c.failLocked(protocolErr(StatusInvalidFramePayloadData, "text message is not valid UTF-8"))
	}
	return nil
}

// discardMessageLocked reads the rest of the current message and drops it,
// checking it all the same.
//
// The caller holds readMu.
func (c *Conn) discardMessageLocked(ctx context.Context) error {
	bp := readBufPool.Get().(*[]byte)
	defer readBufPool.Put(bp)
	for {
		if _, err := c.readMessageLocked(ctx, *bp); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// readRestLocked appends the rest of the current message to dst, whose
// first base bytes are not the message's.
//
// The caller holds readMu.
func (c *Conn) readRestLocked(ctx context.Context, dst []byte, base int) ([]byte, error) {
	for {
		room, probing := dst[len(dst):cap(dst)], false
		if len(dst) == cap(dst) && (c.frameLeft > 0 || !c.frame.fin || c.msgCompressed) {
			if c.filledLimitLocked(dst, base) {
				// The message fills the read limit: a byte more fails
				// it. Its end is looked for in a byte of scratch rather
				// than by copying all of it into a slice a byte larger,
				// which would hold twice the limit at once.
				room, probing = make([]byte, 1), true
			} else {
				dst = c.growLocked(dst, base)
				room = dst[len(dst):cap(dst)]
			}
		}
		n, err := c.readMessageLocked(ctx, room)
		if probing && n > 0 {
			// The limit was raised meanwhile.
			dst = append(c.growLocked(dst, base), room[0])
		} else {
			dst = dst[:len(dst)+n]
		}
		switch {
		case err == io.EOF:
			if dst == nil {
				dst = []byte{}
			}
			return dst, nil
		case err != nil:
			return nil, err
		}
	}
}

// readWholeLocked reads the rest of the current message into a new slice
// of exactly its size, at the cost of that one allocation: Read's way. A
// message whose last frame is all buffered is copied out of the buffer.
// Another is gathered in pooled chunks until it ends, or until its last
// frame is under way, uncompressed, and at least half of the message has
// arrived or is buffered, by us or by the kernel (or the rest is a few
// KiB; restJustifiedLocked), which justifies
// allocating the whole: then what arrived is copied once, and the slice
// returned has room for the rest, which the caller reads in place
// (readRestLocked) when rest is set, from a frame less deep than this
// one. Nothing is allocated on the peer's claim alone, and nothing is
// copied as the message grows.
//
// The caller holds readMu.
func (c *Conn) readWholeLocked(ctx context.Context) (p []byte, rest bool, err error) {
	if c.frame.fin && !c.msgCompressed && c.frameLeft > 0 && int64(c.rb.len()) >= c.frameLeft {
		p, err = c.readBufferedLocked()
		return p, false, err
	}
	list := chunkLists.Get().(*chunkList)
	// The kernel's queue is asked first, then each time what arrived
	// doubled: a few system calls for a message that trickles in.
	askAt := 0
	for {
		ask := list.arrived >= askAt
		if c.restJustifiedLocked(list.arrived, ask) {
			break
		}
		if ask && c.frame.fin {
			askAt = max(2*list.arrived, minReadChunk)
		}
		n, err := c.readMessageLocked(ctx, list.room())
		list.arrived += n
		list.used += n
		if err != nil {
			p, err = c.gatheredLocked(list, err)
			return p, false, err
		}
	}
	p, _ = c.gatheredLocked(list, nil)
	return p, true, nil
}

// readBufferedLocked returns the rest of the message in a new slice when
// all of it is in the read buffer, as the last frame of an uncompressed
// message: the slice is allocated by copying those bytes, which spares
// zeroing it first.
//
// The caller holds readMu.
func (c *Conn) readBufferedLocked() ([]byte, error) {
	p := append([]byte(nil), c.rb.bytes()[:c.frameLeft]...)
	c.rb.consume(len(p))
	c.tookPayloadLocked(p)
	if err := c.checkTextLocked(p); err != nil {
		return nil, err
	}
	if err := c.endMessageLocked(); err != io.EOF {
		return nil, err
	}
	return p, nil
}

// room returns the room left in the last chunk, after adding a chunk if
// it is full: each new one at most as large as what arrived before it.
func (list *chunkList) room() []byte {
	chunks := list.chunks
	if len(chunks) == 0 || list.used == len(*chunks[len(chunks)-1]) {
		list.chunks = append(chunks, readChunkPools[chunkClass(list.arrived)].Get().(*[]byte))
		list.used = 0
	}
	return (*list.chunks[len(list.chunks)-1])[list.used:]
}

// gatheredLocked ends readWholeLocked's gathering in list, err being
// what ended it: io.EOF, the message whole, which it returns; nil, the
// rest justified, and it returns what came in a slice with room for the
// rest; another error, which it returns. The chunks and the list go back
// to their pools. It is apart from readWholeLocked so that its work takes
// no room on that frame, deep under every Read.
//
// The caller holds readMu.
//
//go:noinline
func (c *Conn) gatheredLocked(list *chunkList, err error) ([]byte, error) {
	var p []byte
	switch err {
	case io.EOF:
		p, err = make([]byte, list.arrived), nil
	case nil:
		p = make([]byte, list.arrived, int64(list.arrived)+c.frameLeft)
	}
	list.gather(p)
	return p, err
}

// gather copies into p the first len(p) bytes held in the list's chunks,
// then puts the chunks and the list back in their pools. It is called
// where readWholeLocked returns, rather than deferred, which would take
// room on its frame, deep under every Read.
func (list *chunkList) gather(p []byte) {
	off := 0
	for _, bp := range list.chunks {
		off += copy(p[off:], *bp)
		readChunkPools[chunkClass(len(*bp))].Put(bp)
	}
	clear(list.chunks)
	list.chunks, list.arrived, list.used = list.chunks[:0], 0, 0
	chunkLists.Put(list)
}

// filledLimitLocked reports whether dst, whose first base bytes are the
// caller's, holds as many bytes of the message as the read limit allows,
// with none of the current frame left to read beyond a frame accepted
// under a larger limit (growLocked reads such a frame whole).
//
// The caller holds readMu.
func (c *Conn) filledLimitLocked(dst []byte, base int) bool {
	limit := c.readLimit.Load()
	return limit >= 0 && int64(len(dst)-base) >= limit && (c.msgCompressed || c.frameLeft == 0)
}

// growLocked makes room in dst for more of the message being read. The
// last frame of a message gets room for exactly its rest when what
// arrived justifies it (restJustifiedLocked); otherwise, and for a
// message still in fragments or compressed, dst doubles, which only bytes
// that already arrived justify. dst never grows past the read limit but
// for one byte, enough to see it crossed: the message's bytes, after
// the first base bytes of dst, which are the caller's.
//
// The caller holds readMu.
func (c *Conn) growLocked(dst []byte, base int) []byte {
	extra := c.frameLeft
	if !c.restJustifiedLocked(len(dst)-base, true) {
		extra = max(int64(len(dst)), 512)
	}
	if limit := c.readLimit.Load(); limit >= 0 {
		// A frame accepted under a larger limit may still be read whole;
		// a compressed frame's bytes say nothing of what it inflates to.
		room := limit - int64(len(dst)-base)
		if !c.msgCompressed {
			room = max(room, c.frameLeft)
		}
		extra = min(extra, room)
	}
	extra = max(extra, 1)
	nd := make([]byte, len(dst), int64(len(dst))+extra)
	copy(nd, dst)
	return nd
}

// restJustifiedLocked reports whether room for all the rest of the
// message may be allocated at once, held bytes of it having been read:
// its last frame is under way, uncompressed, and what came (held, and
// buffered) is at least half of held plus the rest, or the rest is a few
// KiB at most. A peer that claims a frame and sends little costs little.
// With ask set, and a rest over maxReadChunk, what came includes the
// input the kernel holds for a plain socket (inputQueued, Linux), which
// is the frame's payload and what follows it: a large message that
// arrived while the previous one was handled is then read into its slice
// in place rather than half gathered and copied. Not over TLS, whose
// queue is records: a peer that sends a byte of payload per record
// would have 20-odd bytes counted for each.
//
// The caller holds readMu.
func (c *Conn) restJustifiedLocked(held int, ask bool) bool {
	if !c.frame.fin || c.msgCompressed {
		return false
	}
	came := int64(held + 2*c.rb.len())
	if came >= c.frameLeft || c.frameLeft <= minReadChunk {
		return true
	}
	return ask && c.frameLeft > maxReadChunk && c.tr.raw != nil && came+2*int64(c.tr.inputQueued()) >= c.frameLeft
}

// readRawLocked reads payload bytes of the current frame into p and
// unmasks them, returning how many it read (at least one).
//
// The caller holds readMu.
func (c *Conn) readRawLocked(ctx context.Context, p []byte) (int, error) {
	if int64(len(p)) > c.frameLeft {
		p = p[:c.frameLeft]
	}
	var n int
	switch {
	case !c.rb.isEmpty():
		return c.takeBufferedLocked(p), nil
	case len(p) >= directReadMin:
		c.beforeWaitLocked(ctx)
		if c.isClosed() {
			return 0, c.readErrLocked(ctx, net.ErrClosed, true)
		}
		c.watch(watchRead, ctx)
		var err error
		for n == 0 {
			n, err = c.tr.rw.Read(p)
			if n == 0 && err != nil {
				return 0, c.readErrLocked(ctx, err, true)
			}
		}
		c.gotInput()
	default:
		if err := c.fillLocked(ctx, false); err != nil {
			return 0, c.readErrLocked(ctx, err, true)
		}
		return c.takeBufferedLocked(p), nil
	}
	c.tookPayloadLocked(p[:n])
	return n, nil
}

// takeBufferedLocked moves payload bytes of the current frame from the
// read buffer, which holds some, into p, unmasked and counted off, as
// many as fit, and returns how many.
//
// The caller holds readMu.
func (c *Conn) takeBufferedLocked(p []byte) int {
	if int64(len(p)) > c.frameLeft {
		p = p[:c.frameLeft]
	}
	n := copy(p, c.rb.bytes())
	c.rb.consume(n)
	c.tookPayloadLocked(p[:n])
	return n
}

// tookPayloadLocked unmasks p, payload bytes of the current frame just
// taken from the transport or the read buffer, and counts them off.
//
// The caller holds readMu.
func (c *Conn) tookPayloadLocked(p []byte) {
	if c.frame.masked {
		c.maskPos = uint8(maskBytes(c.frame.key, int(c.maskPos), p))
	}
	c.frameLeft -= int64(len(p))
}

// readFrameLocked reads frames up to the header of the next data frame,
// which it returns checked and consumed. On the way it answers pings,
// notes pongs and takes in a close frame, returned as the error. A frame
// that breaks the protocol is left unconsumed and reported as a
// *ProtocolError. Control frames are consumed only once whole, so an
// interrupted call leaves the stream where it found it.
//
// The caller holds readMu.
func (c *Conn) readFrameLocked(ctx context.Context) (header, error) {
	return c.scanFramesLocked(ctx, nil, false)
}

// Why scanFramesLocked stopped, when it was given a stop function.
var (
	errScanStopped = errors.New("websocket: frame scan stopped")
	errScanData    = errors.New("websocket: data frame next")
	// errPongQueued: a ping between a message's frames was answered by
	// queueing its pong (controlLocked), which nextDataFrameLocked writes
	// before it reads on.
	errPongQueued = errors.New("websocket: pong queued")
)

// scanFramesLocked is readFrameLocked, but with stop set, it asks stop
// after each control frame whether to go on (ending with errScanStopped
// when not); with leaveData, it leaves the header of a data frame
// unconsumed (ending with errScanData), for a reader to come.
//
// The caller holds readMu.
func (c *Conn) scanFramesLocked(ctx context.Context, stop func() bool, leaveData bool) (header, error) {
	for {
		h, n, err := parseHeader(c.rb.bytes())
		if err != nil {
			return h, err
		}
		if n == 0 {
			if err := c.fillLocked(ctx, c.rb.isEmpty()); err != nil {
				return h, err
			}
			continue
		}
		if err := checkHeader(h, c.rs); err != nil {
			return h, err
		}
		if !h.op.isControl() {
			if leaveData {
				return h, errScanData
			}
			c.rb.consume(n)
			return h, nil
		}
		size := n + int(h.length)
		if c.rb.len() < size {
			if err := c.fillLocked(ctx, false); err != nil {
				return h, err
			}
			continue
		}
		payload := c.rb.bytes()[n:size]
		c.rb.consume(size)
		if h.masked {
			maskBytes(h.key, 0, payload)
		}
		if err := c.controlLocked(ctx, h.op, payload); err != nil {
			return h, err
		}
		if stop != nil && stop() {
			return h, errScanStopped
		}
	}
}

// awaitControlLocked reads and acts on control frames between messages,
// for a Ping or keepalive waiting for an answer that no reader would read,
// until done reports true, a data frame is next (left for a reader; it
// returns errScanData), or ctx ends. A close frame or a protocol violation
// on the way ends the connection as a read would.
//
// The caller holds readMu, and no message is open.
func (c *Conn) awaitControlLocked(ctx context.Context, done func() bool) error {
	if done() {
		return nil
	}
	_, err := c.scanFramesLocked(ctx, done, true)
	// ctx is the caller's for this wait alone: stop watching it, so that
	// its end cannot cut short a later wait (Serve's, which reads the
	// socket without a watch of its own).
	c.pauseWatch(watchRead)
	// What is left waits for a reader that may not come soon.
	c.rb.shrink()
	switch err {
	case errScanStopped:
		return nil
	case errScanData:
		return err
	}
	return c.readErrLocked(ctx, err, false)
}

// fillLocked reads more input into the read buffer, waiting for it if
// need be. idle says that nothing is buffered and no payload is due: a
// wait between frames, which holds no pooled buffer. Neither does a wait
// for the rest of a frame, or of a header, while what is unread fits the
// idle array, unless the last read took all the room it had: then input
// is likely waiting, and the read takes a pooled buffer's worth at once.
//
// The caller holds readMu.
func (c *Conn) fillLocked(ctx context.Context, idle bool) error {
	c.beforeWaitLocked(ctx)
	if c.isClosed() {
		// Writing the queue failed, and closed the connection.
		return net.ErrClosed
	}
	c.watch(watchRead, ctx)
	var err error
	if c.tr.raw != nil && c.rb.len() <= idleReadSize {
		// Wait on the socket itself, holding at most the idle array;
		// inside a message or a frame, then read all that came.
		c.rb.shrink()
		err = awaitRaw(c.tr.rw.(net.Conn), c.tr.raw, &c.rb, c.msgOpen || !c.rb.isEmpty(), c.pausableLocked())
	} else {
		if fr := c.pausableLocked(); fr != nil {
			fr.Pause()
		}
		err = c.rb.fill(c.tr.rw, idle || !c.rb.flowing)
	}
	if err != nil {
		return err
	}
	c.gotInput()
	return nil
}

// pausableLocked returns the decoder of the compressed message being read
// when it is not decoding, so that a wait for more of the message may
// pause it (flate.Reader.Pause): the decoder then gives its working state
// (12.5 KiB) back and keeps under 1 KiB for as long as the peer takes.
// On a socket, the wait pauses it only if it finds no input at hand
// (awaitRaw); on another transport, before every read that may wait.
// Resuming costs the copy of what was kept, and a dynamic block's tables
// (about a microsecond) unless the decoder comes back untouched, as it
// does from its pool when no other connection took it meanwhile.
//
// The caller holds readMu.
func (c *Conn) pausableLocked() *flate.Reader {
	if in := c.inflate; in != nil && in.open && in.src.ctx == nil {
		return in.fr
	}
	return nil
}

// readErrLocked turns an error met while reading into what the caller
// gets, failing or closing the connection as the error requires. mid says
// whether part of the message being read was already consumed.
//
// The caller holds readMu.
func (c *Conn) readErrLocked(ctx context.Context, err error, mid bool) error {
	// The peer's close frame comes as a CloseError itself; a lost
	// connection only wraps one, for CloseStatus.
	ce, peerClosed := err.(CloseError)
	pe, violation := asType[*ProtocolError](err)
	switch {
	case violation:
		return c.failLocked(pe)
	case peerClosed:
		return c.peerClosedLocked(ce)
	case c.isClosed(), err == errStreamQuiesced:
		return c.closedErrFor(ctx, "read")
	case c.tr.inputCut() != nil:
		return c.inputCutLocked(ctx, mid)
	case ctx.Err() != nil && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ctx.Err()) || c.isClosed()):
		if !mid || c.discard.Load() {
			// Nothing of a message was delivered, or Close has begun,
			// which drops what comes unread: the message is nobody's,
			// and Close, waiting for the read lock, reads the rest of
			// it and the peer's answer, within the close timeout.
			return opErr("read", ctx.Err())
		}
		return c.lostMessageLocked(ctx.Err())
	default:
		lost := &lostError{err: err}
		c.closeTransport(lost)
		return lost
	}
}
