package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"qchat/modes/serve/store"
)

// Bench measures what making a message durable costs a store: one op is
// one message. Save writes batches of messages, each batch one commit (the
// saver's group commit); SaveDelete also deletes each batch once saved, as
// for messages acknowledged after their ack grace. open gives a fresh,
// empty store, closed by the caller's cleanup.
//
//	go test -run '^$' -bench . ./modes/serve/store/sqlite/
//	QCHAT_TEST_POSTGRES=postgres://... go test -run '^$' -bench . ./modes/serve/store/postgres/
func Bench(b *testing.B, open func(b *testing.B) store.Store) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("Save/batch=%d", batch), func(b *testing.B) {
			st := open(b)
			var id int64
			done := make(chan error, 1)
			b.ResetTimer()
			for n := 0; n < b.N; n += batch {
				st.SaveInbox(benchItems(min(batch, b.N-n), &id), func(err error) { done <- err })
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
	for _, batch := range []int{1, 256} {
		b.Run(fmt.Sprintf("SaveDelete/batch=%d", batch), func(b *testing.B) {
			st := open(b)
			var id int64
			done := make(chan error, 1)
			b.ResetTimer()
			for n := 0; n < b.N; n += batch {
				items := benchItems(min(batch, b.N-n), &id)
				st.SaveInbox(items, func(err error) { done <- err })
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				ids := make([]int64, len(items))
				for i := range items {
					ids[i] = items[i].ID
				}
				st.DeleteInbox(1001, ids)
			}
			// Wait for the last deletes: a write that waits comes after them.
			if _, _, err := st.ReserveIDs(context.Background(), 1); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func benchItems(n int, id *int64) []store.Item {
	items := make([]store.Item, n)
	now := time.Now()
	for i := range items {
		*id++
		items[i] = store.Item{Recipient: 1001, ID: *id, Kind: "MSG", Sender: 1000, Nick: "alice", Time: now, Body: strings.Repeat("x", 64)}
	}
	return items
}
