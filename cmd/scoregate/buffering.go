package main

import (
	"flag"

	"github.com/scoregate/scoregate/proxy"
)

// bufferOptions are serve's flags about backend answers read whole before
// they go to the client (proxy.Config.BufferResponseBytes and
// BufferTotalBytes): a slow client then holds memory, never a replica
// slot.
type bufferOptions struct {
	responseBytes byteSize // --buffer-response-bytes; 0: off
	totalBytes    byteSize // --buffer-total-bytes
}

func (o *bufferOptions) register(fs *flag.FlagSet) {
	o.responseBytes = proxy.DefaultBufferResponseBytes
	fs.Var(&o.responseBytes, "buffer-response-bytes", "backend answers of known length up to this `size` are read whole before they go to the client, so that a slow client holds no replica slot while it reads (0: none are; streams, of unknown length or text/event-stream, always hold their slot)")
	o.totalBytes = proxy.DefaultBufferTotalBytes
	fs.Var(&o.totalBytes, "buffer-total-bytes", "`size` of the memory all answers read whole may hold at once; an answer that finds it in use streams, holding its slot (32MiB beside --max-connections 4096 fits the shipped 256 MiB pod limit)")
}

// apply checks the options and sets them in pc. Errors name the flag.
func (o *bufferOptions) apply(pc *proxy.Config) error {
	if o.responseBytes == 0 {
		pc.BufferResponseBytes = -1 // off
		return nil
	}
	if o.totalBytes < o.responseBytes {
		return usagef("--buffer-total-bytes %s: want at least --buffer-response-bytes (%s), or no answer of that size is ever read whole", &o.totalBytes, &o.responseBytes)
	}
	pc.BufferResponseBytes, pc.BufferTotalBytes = int64(o.responseBytes), int64(o.totalBytes)
	return nil
}
