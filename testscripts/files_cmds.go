package testscripts

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"qchat/modes/client"
	"qchat/xfer"
)

func parseSize(ts *testscript.TestScript, s string) int64 {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		ts.Fatalf("bad size %q", s)
	}
	return n * mult
}

func cmdMkfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mkfile FILE SIZE")
	}
	size := parseSize(ts, args[1])
	f, err := os.Create(ts.MkAbs(args[0]))
	ts.Check(err)
	defer f.Close()
	r := rand.New(rand.NewPCG(uint64(size), 42))
	buf := make([]byte, 64<<10)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		for i := range buf[:n] {
			buf[i] = byte(r.Uint32())
		}
		_, err := f.Write(buf[:n])
		ts.Check(err)
		left -= n
	}
}

func cmdWaitsize(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitsize FILE SIZE")
	}
	want := parseSize(ts, args[1])
	deadline := time.Now().Add(waitLimit)
	for {
		if fi, err := os.Stat(ts.MkAbs(args[0])); err == nil && fi.Size() >= want {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitsize: %s does not hold %d bytes after %s", args[0], want, waitLimit)
		}
		time.Sleep(5 * time.Millisecond) // polling, not waiting blind
	}
}

func cmdHostileSend(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 5 {
		ts.Fatalf("usage: hostilesend SERVER USER TO LOCAL NAME...")
	}
	server, user, to, local := args[0], args[1], args[2], ts.MkAbs(args[3])
	fi, err := os.Stat(local)
	ts.Check(err)
	o := &xfer.Offer{}
	for _, q := range args[4:] {
		name, err := strconv.Unquote(q)
		if err != nil {
			name = q
		}
		o.Items = append(o.Items, xfer.Item{Local: local, Name: name, Size: fi.Size()})
		o.Total += fi.Size()
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	peer, err := xfer.Listen("127.0.0.1:0")
	ts.Check(err)
	defer peer.Close()
	cl, err := client.Dial(ctx, server, client.Options{Peer: peer, Keys: scriptKeys(ts)})
	ts.Check(err)
	defer cl.Close()
	_, err = cl.Login(ctx, user, ts.Getenv("QCHAT_PASSWORD"))
	ts.Check(err)
	t, err := cl.Offer(ctx, to, "file", o)
	ts.Check(err)
	l, err := cl.Link(ctx, t, xfer.ConnectOptions{})
	ts.Check(err)
	res, err := xfer.Send(ctx, l, o, nil)
	ts.Check(err)
	for i, f := range res.Files {
		if f.Err == nil {
			fmt.Fprintf(ts.Stdout(), "saved %s as %s\n", args[4+i], f.Path)
		} else {
			fmt.Fprintf(ts.Stdout(), "refused %s: %v\n", args[4+i], f.Err)
		}
	}
}
