package xfer

import (
	"context"
	"crypto/sha256"
	"hash"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Benchmarks of a transfer on loopback, both sides in this process:
//
//	go test -run '^$' -bench . -benchtime 3x ./xfer/
//
// BenchmarkPlainCopy is the reference: the same bytes over TCP into a
// file, no hashing. `qchat bench --files` measures the whole, with a
// server, both paths and the CPU and memory of each side.

const benchSize = 256 << 20

func benchFile(b *testing.B) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "src.bin")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for range benchSize >> 20 {
		f.Write(buf)
	}
	f.Close()
	return p
}

func BenchmarkPlainCopy(b *testing.B) {
	src := benchFile(b)
	dst := filepath.Join(b.TempDir(), "dst.bin")
	b.SetBytes(benchSize)
	cpu := cpuMeter(b)
	defer cpu()
	for b.Loop() {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		done := make(chan struct{})
		go func() {
			c, _ := ln.Accept()
			f, _ := os.Create(dst)
			io.Copy(f, c)
			f.Close()
			c.Close()
			close(done)
		}()
		c, _ := net.Dial("tcp", ln.Addr().String())
		f, _ := os.Open(src)
		io.Copy(c, f)
		f.Close()
		c.Close()
		<-done
		ln.Close()
	}
}

// benchLinks makes a fresh pair of peers and a direct link between them,
// outside the timer; stop closes the peers.
func benchLinks(b *testing.B) (la, lb *Link, stop func()) {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	pa, _ := Listen("127.0.0.1:0")
	pb, _ := Listen("127.0.0.1:0")
	pa.SetMe(1)
	pb.SetMe(2)
	ta, tb := tickets(pa, pb, "bench")
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		var err error
		lb, err = pb.Connect(ctx, tb, ConnectOptions{})
		done <- err
	}()
	la, err := pa.Connect(ctx, ta, ConnectOptions{})
	if err != nil || <-done != nil {
		b.Fatal("connect", err)
	}
	return la, lb, func() { b.StopTimer(); pa.Close(); pb.Close(); b.StartTimer() }
}

// benchTransfer sends o over a fresh link into a fresh folder.
func benchTransfer(b *testing.B, o *Offer) {
	b.StopTimer()
	dst := b.TempDir()
	b.StartTimer()
	la, lb, stop := benchLinks(b)
	defer stop()
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := Receive(ctx, lb, ReceiveOptions{Dir: dst}, nil)
		done <- err
	}()
	if _, err := Send(ctx, la, o, nil); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func BenchmarkSendReceive(b *testing.B) {
	src := benchFile(b)
	o, err := NewOffer(src)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	cpu := cpuMeter(b)
	for b.Loop() {
		benchTransfer(b, o)
	}
	cpu()
}

// cpuMeter reports the process's CPU time per GiB moved, from now until
// the returned func is called: on a shared machine the wall time says
// little, the CPU time still compares designs.
func cpuMeter(b *testing.B) func() {
	b.Helper()
	start := processCPU()
	return func() {
		gib := float64(b.N) * float64(benchSize) / (1 << 30)
		b.ReportMetric((processCPU()-start).Seconds()/gib, "cpu-s/GiB")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSmallFiles is one offer of a folder of 1,000 files of 16 KiB.
func BenchmarkSmallFiles(b *testing.B) {
	src := filepath.Join(b.TempDir(), "small")
	os.MkdirAll(src, 0o755)
	data := make([]byte, 16<<10)
	for i := range 1000 {
		data[0] = byte(i)
		os.WriteFile(filepath.Join(src, "f"+strconv.Itoa(i)), data, 0o644)
	}
	o, err := NewOffer(src)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(o.Total)
	for b.Loop() {
		benchTransfer(b, o)
	}
}

// BenchmarkFileHash compares the file hash (BLAKE3, hash.go) with
// SHA-256 (crypto/sha256, which uses the CPU's SHA extensions), in the
// chunks a transfer hashes, on one core:
//
//	go test -run '^$' -bench FileHash -cpu 1 ./xfer/
func BenchmarkFileHash(b *testing.B) {
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for _, h := range []struct {
		name string
		new  func() hash.Hash
	}{{"blake3", newFileHash}, {"sha256", sha256.New}} {
		b.Run(h.name, func(b *testing.B) {
			d := h.new()
			b.SetBytes(chunk)
			for b.Loop() {
				d.Write(buf)
			}
		})
	}
}
