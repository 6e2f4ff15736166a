package discovery

import (
	"net/netip"
	"sync"
	"time"

	"qchat/modes/serve/limits"
)

// Rates of answers (PROTOCOL.md section 10, Limits). A client asks three
// times per search on each of its links, so a source's burst covers a
// couple of searches at once; the server's covers a LAN that starts its
// clients at nine o'clock.
const (
	perSourceRate  = 2.0 // answers per second to one source, after its burst
	perSourceBurst = 8
	totalRate      = 50.0 // answers per second in all, after the burst
	totalBurst     = 100
	maxSources     = 4096 // sources with a bucket; past it new ones wait for a sweep
)

// rater decides whether a request may be answered now. Safe for
// concurrent use (one reader per address family).
type rater struct {
	mu      sync.Mutex
	total   limits.Bucket
	sources map[string]*limits.Bucket
}

func newRater() *rater {
	return &rater{total: limits.NewBucket(totalRate, totalBurst), sources: make(map[string]*limits.Bucket)}
}

// allow takes a token of src's bucket and one of the server's. It reports
// why not: "source" or "total" (for the log), "" when allowed.
func (r *rater) allow(src netip.Addr, now time.Time) string {
	src = src.Unmap().WithZone("")
	key := limits.AddrKey(src)
	if src.Is6() && src.IsLinkLocalUnicast() {
		// Every host of a link is in fe80::/64: each counts alone.
		key = src.String()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.sources[key]
	if b == nil {
		if len(r.sources) >= maxSources {
			r.sweepLocked(now)
			if len(r.sources) >= maxSources {
				return "total"
			}
		}
		nb := limits.NewBucket(perSourceRate, perSourceBurst)
		b = &nb
		r.sources[key] = b
	}
	if !b.Has(now, 1) {
		return "source"
	}
	if !r.total.Allow(now, 1) {
		return "total"
	}
	b.Allow(now, 1)
	return ""
}

// sweep forgets sources whose bucket is full again.
func (r *rater) sweep(now time.Time) {
	r.mu.Lock()
	r.sweepLocked(now)
	r.mu.Unlock()
}

func (r *rater) sweepLocked(now time.Time) {
	for k, b := range r.sources {
		if b.Full(now) {
			delete(r.sources, k)
		}
	}
}
