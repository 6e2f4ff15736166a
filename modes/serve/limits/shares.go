package limits

// Shares counts, for one recipient, the items waiting from each sender, so
// that one sender can be held to its share of the recipient's queue while
// the others still get through. It does not lock: its owner (a mailbox)
// guards it. The zero value is ready.
type Shares struct {
	n map[int64]int32
}

// maxIdle is how many senders with nothing waiting a Shares keeps before
// it drops them: a sender whose count goes 0, 1, 0, 1 with every message
// then costs no map insertion.
const maxIdle = 64

// Add counts one more item from sender.
func (s *Shares) Add(sender int64) {
	if s.n == nil {
		s.n = make(map[int64]int32)
	}
	if _, ok := s.n[sender]; !ok && len(s.n) >= maxIdle {
		for k, v := range s.n {
			if v <= 0 {
				delete(s.n, k)
			}
		}
	}
	s.n[sender]++
}

// AddN counts n more items from sender (items found waiting at start).
func (s *Shares) AddN(sender int64, n int) {
	if n <= 0 {
		return
	}
	s.Add(sender)
	s.n[sender] += int32(n - 1)
}

// Done uncounts an item from sender: it is no longer waiting.
func (s *Shares) Done(sender int64) {
	if v, ok := s.n[sender]; ok && v > 0 {
		s.n[sender] = v - 1
	}
}

// Count is how many items from sender are waiting.
func (s *Shares) Count(sender int64) int { return int(s.n[sender]) }
