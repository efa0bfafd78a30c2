package proxy

import (
	"sync"
)

// bufferPool recycles ReverseProxy's copy buffers. It stores array
// pointers so that Get and Put do not allocate.
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.pool.Get().(*[copyBufferSize]byte)[:] }

func (b *bufferPool) Put(buf []byte) {
	if len(buf) == copyBufferSize {
		b.pool.Put((*[copyBufferSize]byte)(buf))
	}
}

// answerBlockSize is the unit a buffered answer is held in (see
// buffered.go): small enough that a short scoring answer holds little
// while its client reads it, large enough that a 1 MiB answer is 64
// blocks.
const answerBlockSize = 16 << 10

type answerBlock = [answerBlockSize]byte

// blockPool recycles the blocks of buffered answers.
type blockPool struct{ pool sync.Pool }

func (b *blockPool) get() *answerBlock {
	if v := b.pool.Get(); v != nil {
		return v.(*answerBlock)
	}
	return new(answerBlock)
}

func (b *blockPool) put(blk *answerBlock) { b.pool.Put(blk) }
