package recv

import (
	"context"
	"fmt"
	"sync"

	"qchat/modes/client"
	"qchat/protocol"
	"qchat/xfer"
)

// Offline files: recv takes a file left for it on the server (an OFFLINE
// event, at login or as it is left) into --dir as it takes a direct one,
// under the same rules (--dir, --from, --max-size); one at a time, in the
// order told. A file the rules do not let in stays on the server (chat
// can take or refuse it; it expires otherwise), which recv says on stderr.

// offlineQueue is the offline files recv knows of and takes in turn.
type offlineQueue struct {
	mu      sync.Mutex
	known   map[int64]bool // told of, and taken or being taken (a reconnect tells again)
	queue   []client.OfflineFile
	running bool
}

// onOffline handles an OFFLINE event (event loop): queue the file, and
// start the worker unless it runs.
func (r *receiver) onOffline(ctx context.Context, cl *client.Session, f client.OfflineFile, transfers *sync.WaitGroup, files chan<- []xfer.FileResult) {
	q := &r.offline
	o := client.OfferEvent{Purpose: "file", From: f.From, FromNick: f.FromNick, Count: 1, Bytes: f.Size, Name: f.Name}
	if why := r.refusal(o); why != "" {
		fmt.Fprintf(r.stderr, "qchat recv: not taking %s, left on the server by %s (%d): %s\n", offerWhat(o), protocol.Escape(f.FromNick), f.From, why)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.known == nil {
		q.known = make(map[int64]bool)
	}
	if q.known[f.ID] {
		return
	}
	q.known[f.ID] = true
	q.queue = append(q.queue, f)
	if q.running {
		return
	}
	q.running = true
	transfers.Add(1)
	go func() {
		defer transfers.Done()
		for {
			q.mu.Lock()
			if len(q.queue) == 0 || ctx.Err() != nil {
				q.running = false
				q.mu.Unlock()
				return
			}
			f := q.queue[0]
			q.queue = q.queue[1:]
			q.mu.Unlock()
			res, ok := r.takeOffline(ctx, cl, f)
			if !ok {
				q.mu.Lock()
				delete(q.known, f.ID) // told again (FILES, a login): tried again
				q.mu.Unlock()
			}
			select {
			case files <- res:
			case <-ctx.Done():
			}
		}
	}()
}

// takeOffline takes one offline file into --dir and prints it.
func (r *receiver) takeOffline(ctx context.Context, cl *client.Session, f client.OfflineFile) ([]xfer.FileResult, bool) {
	o := client.OfferEvent{Purpose: "file", From: f.From, FromNick: f.FromNick, Count: 1, Bytes: f.Size, Name: f.Name}
	fmt.Fprintf(r.stderr, "qchat recv: taking %s, left on the server by %s (%d)\n", offerWhat(o), protocol.Escape(f.FromNick), f.From)
	res, err := cl.TakeOffline(ctx, f, client.TakeOptions{
		Receive: xfer.ReceiveOptions{Dir: r.cfg.Dir, Overwrite: r.cfg.Overwrite, MaxSize: r.cfg.MaxSize},
		Connect: xfer.ConnectOptions{Timeout: r.cfg.ConnectTimeout, Idle: r.cfg.IdleTimeout},
		Note: func(s string) {
			fmt.Fprintf(r.stderr, "qchat recv: %s from %s (%d): %s\n", offerWhat(o), protocol.Escape(f.FromNick), f.From, protocol.Escape(s))
		},
	}, newMeter(r.stderr, offerWhat(o)))
	from := client.User{ID: f.From, Nick: f.FromNick}
	for _, x := range res {
		if x.Err == nil {
			r.out.FileReceived(from, x, r.cfg.Dir, "server")
		}
	}
	if err != nil {
		fmt.Fprintf(r.stderr, "qchat recv: %s from %s (%d): %s (it stays on the server; what arrived is kept in a .part file and resumes)\n",
			offerWhat(o), protocol.Escape(f.FromNick), f.From, protocol.Escape(err.Error()))
		return res, false
	}
	return res, true
}
