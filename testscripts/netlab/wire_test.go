package netlab

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A wire is the lab's stand-in for the internet between a host and the
// public bridge: two TAP devices, one in each namespace, and this process
// passing Ethernet frames between them after a delay, taking `hops` off
// each IP packet's TTL (hop limit) on the way as that many routers would,
// and dropping the packets whose TTL runs out on the way. The kernel has
// no netem here, and a bridge alone puts two NAT routers next to each
// other, which no two home routers are: with no delay no two peers can
// time anything, and with no router between them a SYN with a small TTL
// cannot die before the far router.
type wire struct {
	ends  [2]*os.File
	delay time.Duration
	hops  int
	wg    sync.WaitGroup
}

// openTAP creates a TAP device named name inside the network namespace
// nsName (its file under /run/netns) and returns its file. The device
// lives as long as the file is open.
func openTAP(nsName, name string) (*os.File, error) {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + nsName)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("setns %s: %w", nsName, err)
	}
	fd, tapErr := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if tapErr == nil {
		ifr, err := unix.NewIfreq(name)
		if err == nil {
			ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
			err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
		}
		if err != nil {
			unix.Close(fd)
			tapErr = fmt.Errorf("TUNSETIFF %s: %w", name, err)
		}
	}
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// This thread stays in the lab's namespace: keep it locked, so
		// that it ends with this goroutine instead of running others.
		if tapErr == nil {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	if tapErr != nil {
		return nil, tapErr
	}
	return os.NewFile(uintptr(fd), name), nil
}

// newWire connects two TAP files; it runs until close.
func newWire(a, b *os.File, delay time.Duration, hops int) *wire {
	w := &wire{ends: [2]*os.File{a, b}, delay: delay, hops: hops}
	w.wg.Add(2)
	go w.carry(a, b)
	go w.carry(b, a)
	return w
}

func (w *wire) close() {
	w.ends[0].Close()
	w.ends[1].Close()
	w.wg.Wait()
}

type frame struct {
	data []byte
	due  time.Time
}

// carry moves frames from src to dst, each after the wire's delay; a
// full queue drops frames, as a router's would.
func (w *wire) carry(src, dst *os.File) {
	defer w.wg.Done()
	q := make(chan frame, 4096)
	go func() {
		defer close(q)
		buf := make([]byte, 65536)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			f := frame{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(w.delay)}
			if !w.age(f.data) {
				continue
			}
			select {
			case q <- f:
			default:
			}
		}
	}()
	for f := range q {
		if d := time.Until(f.due); d > 0 {
			time.Sleep(d) // the wire's delay: this is the emulated network, not a wait in a test
		}
		dst.Write(f.data) // a closed end: the frames still queued are lost with it
	}
}

// age takes the wire's hops off an IPv4 TTL or IPv6 hop limit; false
// when the packet dies on the way.
func (w *wire) age(f []byte) bool {
	if w.hops == 0 || len(f) < 14+20 {
		return true
	}
	switch binary.BigEndian.Uint16(f[12:14]) {
	case 0x0800:
		ip := f[14:]
		ihl := int(ip[0]&0x0f) * 4
		if ihl < 20 || len(ip) < ihl {
			return true
		}
		if int(ip[8]) <= w.hops {
			return false
		}
		ip[8] -= byte(w.hops)
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:12], ipChecksum(ip[:ihl]))
	case 0x86dd:
		ip := f[14:]
		if int(ip[7]) <= w.hops {
			return false
		}
		ip[7] -= byte(w.hops)
	}
	return true
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
