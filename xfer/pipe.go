package xfer

import (
	"sync/atomic"
)

// pipeDepth is how many chunks may be in flight between the two stages.
const pipeDepth = 4

// firstChunk is the size of the first chunk: small, so that the first
// bytes of a file reach the disk and the progress bar as soon as they
// cross (a new connection, in TCP slow start, brings 256 KiB only after a
// few round trips).
const firstChunk = 16 << 10

// pipe moves n bytes in chunks through two stages that run at once: fill
// (on the calling goroutine) fills a chunk, drain (on a goroutine of its
// own) consumes it, in order. So hashing overlaps the network and the
// disk: the sender reads and hashes the next chunk while the last one is
// written to the link; the receiver reads the next chunk from the link
// while the last one is hashed and written. The first error of either
// stage ends it and is returned (fill's first).
func pipe(n int64, fill, drain func(b []byte) error) error {
	if n <= chunk {
		// One chunk: nothing to overlap.
		bp := chunkPool.Get().(*[]byte)
		defer chunkPool.Put(bp)
		b := (*bp)[:n]
		if err := fill(b); err != nil {
			return err
		}
		return drain(b)
	}
	free := make(chan []byte, pipeDepth)
	full := make(chan []byte, pipeDepth)
	var bufs []*[]byte
	for range pipeDepth {
		b := chunkPool.Get().(*[]byte)
		bufs = append(bufs, b)
		free <- *b
	}
	defer func() {
		for _, b := range bufs {
			chunkPool.Put(b)
		}
	}()
	var drainFailed atomic.Bool
	drained := make(chan error, 1)
	go func() {
		var err error
		for b := range full {
			if err == nil {
				if err = drain(b); err != nil {
					drainFailed.Store(true)
				}
			}
			free <- b[:cap(b)]
		}
		drained <- err
	}()
	var err error
	for left, size := n, int64(firstChunk); left > 0 && !drainFailed.Load(); size = chunk {
		b := <-free
		b = b[:min(size, left)]
		if err = fill(b); err != nil {
			break
		}
		full <- b
		left -= int64(len(b))
	}
	close(full)
	derr := <-drained
	if err != nil {
		return err
	}
	return derr
}
