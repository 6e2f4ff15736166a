package bench

import (
	"math/bits"
	"time"
)

// hist is a log-linear histogram of durations: exact below 1024 ns, then
// 512 buckets per power of two (0.2% resolution) up to the int64 range. It
// costs 256 KiB and one add per sample, whatever the sample count. One
// goroutine records; merge after it is done.
type hist struct {
	counts []uint64
	n      uint64
	max    int64
}

const (
	histLinear = 1024 // values below are their own bucket
	histSub    = 512  // buckets per power of two above
)

func newHist() *hist {
	return &hist{counts: make([]uint64, histLinear+(64-10)*histSub)}
}

func histIndex(v int64) int {
	if v < histLinear {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - 10 // v >> e is in [512, 1024)
	return histLinear + (e-1)*histSub + int(uint64(v)>>e) - histSub
}

// histValue is the upper end of bucket i, so percentiles never flatter.
func histValue(i int) int64 {
	if i < histLinear {
		return int64(i)
	}
	i -= histLinear
	e := i/histSub + 1
	sub := int64(i%histSub + histSub)
	return (sub+1)<<e - 1
}

func (h *hist) add(d time.Duration) {
	v := int64(d)
	h.counts[histIndex(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the smallest bucket value at or above fraction q of
// the samples (0 for an empty histogram); never more than the max seen.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histValue(i), h.max))
		}
	}
	return time.Duration(h.max)
}
