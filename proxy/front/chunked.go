package front

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"

	"golang.org/x/net/http/httpguts"
)

// chunkedBody decodes a chunked request body (RFC 9112 section 7.1) from
// the connection's read buffer, in place of net/http's decoder, so that
// the trailer section gets the framing the header gets (see reader).
// net/http's reads the trailer with textproto, which takes a bare LF for
// CRLF and unfolds obsolete line folding, and it first peeks for the
// CRLF CRLF that ends the section: a section ended by a bare LF left the
// read waiting for bytes that never came. Here every trailer line must
// end in CRLF, without a bare CR, not start with a space or tab, and be
// a valid field; the section is held to maxTrailerBytes. A malformed
// trailer fails the body, which answers 400 and ends the connection.
//
// The chunk lines and data are read as net/http reads them (its
// internal/chunked.go): a line ends in CRLF with no CR before it and is
// shorter than 4 KiB; trailing spaces and tabs are dropped, then any
// extension from the first ';'; the size is 1 to 16 hex digits; data is
// followed by CRLF; and extensions and framing may not outweigh the data
// by more than 16 KiB. In addition an extension may not hold control
// characters. The trailer fields go into req.Trailer once the body has
// been read to its end, announced or not, as net/http does.
//
// Read returns the data it has without waiting for the next chunk line,
// as net/http's decoder does, so that a streamed body reaches the handler
// as it arrives.
type chunkedBody struct {
	br  *bufio.Reader
	req *http.Request // whose Trailer gets the trailer fields

	n        uint64 // bytes of the current chunk still to read
	checkEnd bool   // the CRLF after a chunk's data is due
	last     bool   // the last chunk was read; the trailer section is due
	excess   int64  // framing bytes beyond what the data allows
	err      error  // sticky; io.EOF at the end
}

// maxChunkLine bounds a chunk-size line, CRLF excluded (net/http's
// maxLineLength).
const maxChunkLine = 4096

// maxTrailerBytes bounds the trailer section, CRLFs included. net/http's
// bound is its 4 KiB read buffer, in which it looks for the section's end.
const maxTrailerBytes = 4 << 10

// Errors of a chunked body.
var (
	errChunkLF        = errors.New("chunked body: a chunk-size line ends in LF without CR")
	errChunkCR        = errors.New("chunked body: CR without LF in a chunk-size line")
	errTrailerLF      = errors.New("chunked body: a trailer line ends in LF without CR")
	errTrailerCR      = errors.New("chunked body: CR without LF in the trailer")
	errChunkLine      = errors.New("chunked body: chunk-size line too long")
	errChunkSize      = errors.New("chunked body: malformed chunk size")
	errChunkExt       = errors.New("chunked body: control character in a chunk extension")
	errChunkEnd       = errors.New("chunked body: chunk data not followed by CRLF")
	errChunkNonData   = errors.New("chunked body: too much non-data")
	errTrailerFold    = errors.New("chunked body: obsolete line folding in the trailer")
	errTrailerField   = errors.New("chunked body: malformed trailer field")
	errTrailerTooLong = errors.New("chunked body: trailer section too large")
)

func (cb *chunkedBody) Read(p []byte) (n int, err error) {
	for cb.err == nil {
		switch {
		case cb.checkEnd:
			if n > 0 && cb.br.Buffered() < 2 {
				return n, nil // don't wait for the CRLF with data in hand
			}
			cb.err = cb.readCRLF()
			cb.checkEnd = false
		case cb.last:
			if n > 0 {
				return n, nil // the data first; the trailer on the next Read
			}
			cb.err = cb.readTrailer()
		case cb.n == 0:
			if n > 0 && !lineBuffered(cb.br) {
				return n, nil // don't wait for the next chunk line with data in hand
			}
			cb.err = cb.beginChunk()
		case len(p) == 0:
			return n, nil
		default:
			m, err := cb.br.Read(p[:min(uint64(len(p)), cb.n)])
			n += m
			p = p[m:]
			cb.n -= uint64(m)
			switch {
			case err == io.EOF:
				cb.err = io.ErrUnexpectedEOF
			case err != nil:
				cb.err = err
			case cb.n == 0:
				cb.checkEnd = true
			}
		}
	}
	return n, cb.err
}

// lineBuffered reports whether br holds a whole line already.
func lineBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// lineErrors are the errors of a line: ended by a bare LF, holding a
// bare CR, longer than the read buffer.
type lineErrors struct{ lf, cr, tooLong error }

var (
	chunkLineErrors   = lineErrors{errChunkLF, errChunkCR, errChunkLine}
	trailerLineErrors = lineErrors{errTrailerLF, errTrailerCR, errTrailerTooLong}
)

// readLine reads a line that ends in CRLF, with no CR before that, and
// returns it without the CRLF. The line is valid until the next read of
// br.
func (cb *chunkedBody) readLine(e lineErrors) ([]byte, error) {
	line, err := cb.br.ReadSlice('\n')
	switch {
	case err == io.EOF:
		return nil, io.ErrUnexpectedEOF
	case err == bufio.ErrBufferFull:
		return nil, e.tooLong
	case err != nil:
		return nil, err
	}
	switch i := bytes.IndexByte(line, '\r'); {
	case i < 0:
		return nil, e.lf
	case i != len(line)-2:
		return nil, e.cr
	}
	return line[:len(line)-2], nil
}

func (cb *chunkedBody) readCRLF() error {
	var b [2]byte
	if _, err := io.ReadFull(cb.br, b[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if b != [2]byte{'\r', '\n'} {
		return errChunkEnd
	}
	return nil
}

// beginChunk reads a chunk-size line.
func (cb *chunkedBody) beginChunk() error {
	line, err := cb.readLine(chunkLineErrors)
	if err != nil {
		return err
	}
	if len(line) >= maxChunkLine {
		return errChunkLine
	}
	cb.excess += int64(len(line)) + 2 // the line, and the CRLF after its data
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1]
	}
	size, ext, _ := bytes.Cut(line, []byte(";"))
	for _, c := range ext {
		if c < ' ' && c != '\t' || c == 0x7f {
			return errChunkExt
		}
	}
	if len(size) == 0 || len(size) > 16 {
		return errChunkSize
	}
	var n uint64
	for _, c := range size {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return errChunkSize
		}
		n = n<<4 | uint64(c)
	}
	// As net/http: 16 bytes of framing per chunk are free, and twice the
	// chunk's data; beyond that, 16 KiB in all.
	cb.excess = max(cb.excess-16-2*int64(min(n, 1<<40)), 0)
	if cb.excess > 16<<10 {
		return errChunkNonData
	}
	cb.n = n
	cb.last = n == 0
	return nil
}

// readTrailer reads the trailer section up to the empty line that ends
// it, and puts its fields in the request's Trailer.
func (cb *chunkedBody) readTrailer() error {
	var fields http.Header
	left := maxTrailerBytes
	for {
		line, err := cb.readLine(trailerLineErrors)
		if err != nil {
			return err
		}
		if left -= len(line) + 2; left < 0 {
			return errTrailerTooLong
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errTrailerFold
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		k := string(name)
		v := textproto.TrimString(string(value))
		if !ok || !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
			return errTrailerField
		}
		if fields == nil {
			fields = http.Header{}
		}
		fields.Add(k, v)
	}
	if cb.req.Trailer == nil {
		cb.req.Trailer = fields
	} else {
		for k, vv := range fields {
			cb.req.Trailer[k] = vv
		}
	}
	return io.EOF
}

// isChunked reports whether req's body is chunked, which http.ReadRequest
// says with exactly this Transfer-Encoding (any other is refused).
func isChunked(req *http.Request) bool {
	return len(req.TransferEncoding) == 1 && req.TransferEncoding[0] == "chunked"
}
