package xfer

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// sendManifest writes a manifest of count one-byte files to a and
// returns what the receiver answered, once a is closed.
func sendManifest(a net.Conn, count int) <-chan string {
	answers := make(chan string, 1)
	go func() {
		var m strings.Builder
		m.WriteString("FILES " + strconv.Itoa(count) + " " + strconv.Itoa(count) + "\n")
		for i := range count {
			m.WriteString("F " + strconv.Itoa(i) + " 1 f" + strconv.Itoa(i) + "\n")
		}
		m.WriteString("END\n")
		a.Write([]byte(m.String()))
	}()
	go func() {
		got, _ := io.ReadAll(a)
		answers <- string(got)
	}()
	return answers
}

// TestManifestCostsLittlePerFile: a manifest line of a dozen bytes must
// not make the receiver hold kilobytes per file. A peer may list 100,000
// files; with a file hash made for each file as the list is read (11 KiB
// each with BLAKE3), that was 1.1 GB of memory from 1.5 MB of lines.
func TestManifestCostsLittlePerFile(t *testing.T) {
	const count = 20000
	a, b := net.Pipe()
	defer a.Close()
	sendManifest(a, count)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	files, _, err := readManifest(newLink(b, ioWait))
	runtime.ReadMemStats(&after)
	if err != nil || len(files) != count {
		t.Fatalf("readManifest: %d files, %v", len(files), err)
	}
	per := (after.TotalAlloc - before.TotalAlloc) / count
	if per > 2048 {
		t.Errorf("reading the manifest allocated %d bytes per file (a line of ~12 bytes); want at most 2048", per)
	}
	runtime.KeepAlive(files)
}

// TestManifestBeyondTheOfferRefused: the receiver accepted what the offer
// said (FILE <count> <bytes>); a peer that then lists more files or bytes
// on the link is refused (NO) before anything is written.
func TestManifestBeyondTheOfferRefused(t *testing.T) {
	for _, tc := range []struct {
		name         string
		count, bytes int64
	}{{"more files", 1, 100}, {"more bytes", 100, 1}, {"bytes after an offer of empty files", 3, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a, b := net.Pipe()
			defer a.Close()
			answers := sendManifest(a, 3)
			ctx, cancel := context.WithTimeout(context.Background(), ioWait)
			defer cancel()
			_, err := Receive(ctx, newLink(b, ioWait), ReceiveOptions{Dir: dir, Count: tc.count, Bytes: tc.bytes}, nil)
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("Receive: %v, want it refused", err)
			}
			if got := <-answers; !strings.HasPrefix(got, "NO ") {
				t.Errorf("the receiver answered %q, want NO", got)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("wrote %v", ents)
			}
		})
	}
}

// TestManifestWithinTheOfferTaken: what the offer said goes through.
func TestManifestWithinTheOfferTaken(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	o := &Offer{}
	for _, n := range []string{"a", "b"} {
		writeFile(t, src+"/"+n, []byte("hello "+n))
		o.Items = append(o.Items, Item{Local: src + "/" + n, Name: n, Size: 7})
		o.Total += 7
	}
	count, total, _ := o.Summary()
	_, rres, serr, rerr := transfer(t, o, ReceiveOptions{Dir: dst, Count: int64(count), Bytes: total})
	if serr != nil || rerr != nil {
		t.Fatalf("send %v, receive %v", serr, rerr)
	}
	for _, f := range rres {
		if f.Err != nil {
			t.Errorf("%s: %v", f.Name, f.Err)
		}
	}
}
