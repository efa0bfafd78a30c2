package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/scoregate/scoregate/metrics"
)

// Backend answers of known length up to Config.BufferResponseBytes are read
// whole into pooled blocks as soon as their headers arrive, and the
// request's replica slot is released (its backend connection went back to
// the idle pool with the body's last byte) before the answer is written to
// the client. A client that reads slowly, or not at all, then holds only
// the blocks its answer still occupies, never model capacity: without this,
// 1,000 slow readers (slowhttptest's slow-read attack) each kept a slot,
// and other clients got 503. nginx buffers a proxied answer for the same
// reason: with proxy_buffering on, its default, it reads the answer from
// the backend as soon as possible into its proxy_buffers (by default eight
// of 4k or 8k, one memory page), and what does not fit in memory goes to a
// temporary file (proxy_max_temp_file_size). scoregate keeps answers in
// memory only, hence the bound per answer and Config.BufferTotalBytes, the
// bound on all of them together.
//
// Streams are not buffered and hold their slot until the client has them:
// an answer of unknown length (chunked, or until close),
// text/event-stream, a protocol switch (101), an answer with trailers,
// one over the bound, and one that finds BufferTotalBytes in use. For an
// answer of unknown length or an event stream, the header goes to the
// client before the first body byte is waited for (see streamed).
//
// Reading the body before writing the header moves the end of the wait for
// the backend (statusRecorder.upstreamEnd) to the body's end: the transfer
// is the backend's time, not scoregate's, and stays out of the proxy
// overhead, as the transfer of a streamed body does.

// answerBuffers is the Proxy's budget for buffered answers. It is safe for
// concurrent use.
type answerBuffers struct {
	max    int64 // the largest answer buffered; < 0: none is
	total  int64 // the bound on inUse
	blocks blockPool
	m      *metrics.Metrics

	inUse atomic.Int64 // bytes reserved by buffered answers; never above total
}

// init applies Config.BufferResponseBytes and BufferTotalBytes and their
// defaults; an error names the field.
func (ab *answerBuffers) init(perAnswer, total int64, m *metrics.Metrics) error {
	if total < 0 {
		return fmt.Errorf("proxy: BufferTotalBytes is negative (%d)", total)
	}
	ab.max = perAnswer
	if ab.max == 0 {
		ab.max = DefaultBufferResponseBytes
	}
	ab.total = total
	if ab.total == 0 {
		ab.total = DefaultBufferTotalBytes
	}
	ab.m = m
	return nil
}

// reserve takes n bytes of the budget; false if that would exceed it.
func (ab *answerBuffers) reserve(n int64) bool {
	if n == 0 {
		return true
	}
	for {
		cur := ab.inUse.Load()
		if cur+n > ab.total {
			return false
		}
		if ab.inUse.CompareAndSwap(cur, cur+n) {
			ab.m.ResponseBuffer(n)
			return true
		}
	}
}

// unreserve gives n bytes of the budget back.
func (ab *answerBuffers) unreserve(n int64) {
	if n != 0 {
		ab.inUse.Add(-n)
		ab.m.ResponseBuffer(-n)
	}
}

// bufferable reports whether resp is read whole before it is written to
// the client (see the comment at the top of this file).
func (ab *answerBuffers) bufferable(resp *http.Response) bool {
	return resp.ContentLength >= 0 && resp.ContentLength <= ab.max &&
		resp.StatusCode != http.StatusSwitchingProtocols && len(resp.Trailer) == 0 &&
		!isEventStream(resp.Header)
}

// streamed reports whether resp is a stream whose header goes to the
// client at once, before its first body byte, and whose body is flushed
// after every read: unknown length or text/event-stream, ReverseProxy's
// rule for flushing at once (its FlushInterval -1) and the direct path's.
func streamed(resp *http.Response) bool {
	return resp.ContentLength < 0 || isEventStream(resp.Header)
}

// isEventStream reports whether h's Content-Type is text/event-stream,
// ignoring case and parameters, as ReverseProxy's mime.ParseMediaType
// does.
func isEventStream(h http.Header) bool {
	const es = "text/event-stream"
	ct := h["Content-Type"]
	if len(ct) == 0 {
		return false
	}
	v := strings.TrimLeft(ct[0], " \t")
	if len(v) < len(es) || !strings.EqualFold(v[:len(es)], es) {
		return false
	}
	rest := strings.TrimLeft(v[len(es):], " \t")
	return rest == "" || rest[0] == ';'
}

// errAnswerTooLong is a body that goes on past its Content-Length; the
// backend clients never deliver one (they frame by the length), so it is
// a guard.
var errAnswerTooLong = errors.New("backend response body longer than its Content-Length")

// heldAnswer is one answer read whole: its body in blocks, handed out by
// WriteTo (the direct path) or Read (ReverseProxy), each block back to the
// pool, and its share of the budget given back, once written. The zero
// value holds nothing; a reqState has one. It is not safe for concurrent
// use.
type heldAnswer struct {
	ab       *answerBuffers
	blocks   []*answerBlock  // each nil once handed out
	inline   [4]*answerBlock // backs blocks up to 64 KiB without allocating
	n        int64           // body bytes held
	sent     int64           // body bytes handed out
	reserved int64           // bytes of the budget this answer holds
	probe    [1]byte
}

// readWhole reads resp's body into st.held if resp is bufferable and the
// budget has room, and then releases the request's replica slot. It
// reports whether it did; false with a nil error leaves resp untouched,
// to be streamed. An error is the body's: resp is then done with, its
// header not yet written to the client, and nothing is held.
func (p *Proxy) readWhole(st *reqState, resp *http.Response) (bool, error) {
	ab := &p.answers
	if !ab.bufferable(resp) {
		return false, nil
	}
	blocks := (resp.ContentLength + answerBlockSize - 1) / answerBlockSize
	if !ab.reserve(blocks * answerBlockSize) {
		p.metrics.ResponseBufferFull()
		return false, nil
	}
	h := &st.held
	h.ab, h.reserved = ab, blocks*answerBlockSize
	h.blocks = h.inline[:0]
	err := h.fill(resp.Body)
	resp.Body.Close() // at EOF, h1 and net/http have already pooled the connection
	// The body's transfer was the backend's time (see above).
	st.rec.upstreamEnd = time.Now()
	if err != nil {
		h.Close()
		return false, err
	}
	h.trim()
	p.release(st)
	return true, nil
}

// fill reads body to its end into blocks, at most h.reserved bytes.
func (h *heldAnswer) fill(body io.Reader) error {
	for {
		if h.n == int64(len(h.blocks))*answerBlockSize {
			if h.n == h.reserved {
				// Every byte of the Content-Length is in; a read
				// must now end the body, and pool the connection.
				n, err := body.Read(h.probe[:])
				switch {
				case n > 0:
					return errAnswerTooLong
				case err == io.EOF:
					return nil
				case err != nil:
					return err
				}
				continue
			}
			h.blocks = append(h.blocks, h.ab.blocks.get())
		}
		b := h.blocks[len(h.blocks)-1]
		n, err := body.Read(b[h.n%answerBlockSize:])
		h.n += int64(n)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// trim gives back what a body shorter than its Content-Length (the answer
// to a HEAD) did not take: an empty last block, and the budget of the
// blocks never taken.
func (h *heldAnswer) trim() {
	used := (h.n + answerBlockSize - 1) / answerBlockSize
	for int64(len(h.blocks)) > used {
		last := len(h.blocks) - 1
		h.ab.blocks.put(h.blocks[last])
		h.blocks = h.blocks[:last]
	}
	if unused := h.reserved - used*answerBlockSize; unused > 0 {
		h.reserved -= unused
		h.ab.unreserve(unused)
	}
}

// next returns the bytes of the current block not yet handed out.
func (h *heldAnswer) next() []byte {
	i := h.sent / answerBlockSize
	off := h.sent % answerBlockSize
	end := min(int64(answerBlockSize), h.n-i*answerBlockSize)
	return h.blocks[i][off:end]
}

// advance records n more bytes handed out, and gives back a block once
// all of it is.
func (h *heldAnswer) advance(n int) {
	i := h.sent / answerBlockSize
	h.sent += int64(n)
	if h.sent == h.n || h.sent%answerBlockSize == 0 {
		h.ab.blocks.put(h.blocks[i])
		h.blocks[i] = nil
		h.reserved -= answerBlockSize
		h.ab.unreserve(answerBlockSize)
	}
}

// WriteTo writes the answer's body to w, a block at a time, each given
// back once w has taken it: a client that stops reading holds only what
// it has not taken.
func (h *heldAnswer) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for h.sent < h.n {
		n, err := w.Write(h.next())
		total += int64(n)
		if err != nil {
			return total, err
		}
		h.advance(n)
	}
	return total, nil
}

// Read hands out the answer's body: ReverseProxy's copy reads it.
func (h *heldAnswer) Read(p []byte) (int, error) {
	if h.sent == h.n {
		return 0, io.EOF
	}
	n := copy(p, h.next())
	h.advance(n)
	return n, nil
}

// Close gives back every block still held and the budget's share; h then
// holds nothing. It is safe to call more than once.
func (h *heldAnswer) Close() error {
	if h.ab == nil {
		return nil
	}
	for _, b := range h.blocks {
		if b != nil {
			h.ab.blocks.put(b)
		}
	}
	h.ab.unreserve(h.reserved)
	*h = heldAnswer{}
	return nil
}
