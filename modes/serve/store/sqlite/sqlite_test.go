package sqlite

import (
	"log/slog"
	"testing"

	"qchat/modes/serve/store"
	"qchat/modes/serve/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() (store.Store, error) {
		dir := t.TempDir()
		return func() (store.Store, error) { return Open(dir, "normal", quiet) }
	})
}

var quiet = slog.New(slog.DiscardHandler)

func BenchmarkStore(b *testing.B) {
	for _, sync := range []string{"full", "normal"} {
		b.Run("sync="+sync, func(b *testing.B) {
			storetest.Bench(b, func(b *testing.B) store.Store {
				st, err := Open(b.TempDir(), sync, quiet)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { st.Close() })
				return st
			})
		})
	}
}
