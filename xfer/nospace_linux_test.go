package xfer

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fillMeter fills the receiver's disk once the receiver said GO: the
// free-space check has passed, the writes then find no room.
type fillMeter struct {
	path string
	size int64
}

func (m fillMeter) Begin(int, int64, int64) {
	f, err := os.Create(m.path)
	if err == nil {
		f.Write(make([]byte, m.size))
		f.Close()
	}
}
func (fillMeter) Bytes(int)           {}
func (fillMeter) FileDone(FileResult) {}

// TestNoRoomLeavesNoPart: a file that finds the disk full while it is
// written fails alone (BAD, the link goes on), and with DropOnWriteError
// leaves no NAME.part; without it, the part stays to resume from. Needs a
// small tmpfs: skipped where this process may not mount one.
func TestNoRoomLeavesNoPart(t *testing.T) {
	for _, drop := range []bool{true, false} {
		mnt := t.TempDir()
		if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
			t.Skipf("cannot mount a tmpfs here: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
		src := filepath.Join(t.TempDir(), "big.bin")
		writeFile(t, src, randomBytes(1<<20))
		o, err := NewOffer(src)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(mnt, "in")
		a, b := listen(t, 1), listen(t, 2)
		ta, tb := tickets(a, b, "t"+hex.EncodeToString(randomBytes(8)))
		la, lb := connectPair(t, a, b, ta, tb, ConnectOptions{})
		done := make(chan SendResult, 1)
		go func() {
			res, _ := Send(context.Background(), la, o, fillMeter{filepath.Join(mnt, "filler"), 1800 << 10})
			done <- res
		}()
		files, err := Receive(context.Background(), lb, ReceiveOptions{Dir: dir, DropOnWriteError: drop}, nil)
		sres := <-done
		if err != nil || len(files) != 1 || files[0].Err == nil || !strings.Contains(files[0].Err.Error(), "no space") {
			t.Fatalf("receive: %v %+v, want the file to fail for want of room", err, files)
		}
		if len(sres.Files) != 1 || sres.Files[0].Err == nil || !strings.Contains(sres.Files[0].Err.Error(), "no space") {
			t.Fatalf("the sender heard %+v", sres.Files)
		}
		_, err = os.Stat(filepath.Join(dir, "big.bin.part"))
		if drop != errors.Is(err, os.ErrNotExist) {
			t.Errorf("DropOnWriteError %v: the part: %v", drop, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "big.bin")); err == nil {
			t.Error("a file that did not fit is in place")
		}
	}
}
