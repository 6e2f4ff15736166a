package xfer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"syscall"
	"time"
)

// ReceiveOptions tune Receive.
type ReceiveOptions struct {
	Dir       string // the receiving folder; nothing is ever written outside it
	Overwrite bool   // replace existing files instead of saving as "name (1).ext"
	MaxSize   int64  // refuse offers of more bytes in all (0: no cap)
	// Count and Bytes are what the offer said (FILE <count> <bytes>), what
	// the user accepted: a link that lists more files or bytes is refused.
	// Count 0: not checked (an offer has at least one file).
	Count, Bytes int64
	// Keep, when set, is called with each file once it is verified and in
	// place (its path relative to Dir, as saved, and its hash), before the
	// sender hears OK: what it returns is what the sender is told was
	// saved, and its error is the file's BAD. The server's offline files
	// move the file into their store here, so that a sender told OK has
	// its file kept.
	Keep func(saved, hash string) (string, error)
	// DropOnWriteError: a file that cannot be written here (no room left,
	// an I/O error) leaves no NAME.part behind, rather than one to resume
	// from. The server's offline files: the sender hears BAD, the space
	// is free again, and nothing half-written stays.
	DropOnWriteError bool
}

// maxFileSize bounds the size a peer may announce (1 PiB).
const maxFileSize = 1 << 50

// incoming is the receiver's plan for one offered file.
type incoming struct {
	name string // sanitized relative path
	size int64
	skip string    // why it is refused, "" if wanted
	have int64     // bytes of its .part we can keep
	h    hash.Hash // made when needed (hasher): 11 KiB each, and a peer may list 100,000 files
	done bool
	part os.FileInfo // the .part as planned (have > 0), to see that it did not change
}

// hasher is f's file hash, made on first use.
func (f *incoming) hasher() hash.Hash {
	if f.h == nil {
		f.h = newFileHash()
	}
	return f.h
}

// Receive takes one offer from an established file link into opts.Dir:
// it reads the list of files, reduces every name to a safe relative path
// (SafePath), refuses what cannot be saved safely, offers to resume from
// the .part files it holds (with the hash of what they hold, so that a
// source that changed is sent again from zero), checks free space before
// any byte is written, and then writes each file to NAME.part, verifies
// its hash (BLAKE3) and renames it to NAME — or to "NAME (1).ext" when NAME
// exists and Overwrite is off. Every file is opened through os.Root and
// without following symlinks, so nothing can be written outside the folder.
//
// Receive owns the link: it is closed when Receive returns.
func Receive(ctx context.Context, l *Link, opts ReceiveOptions, m Meter) ([]FileResult, error) {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer l.Close()
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(opts.Dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()

	files, total, err := readManifest(l)
	if err != nil {
		return nil, err
	}
	refuse := func(why string) ([]FileResult, error) {
		l.send("NO", why)
		return nil, fmt.Errorf("%w: %s", ErrRefused, why)
	}
	if opts.Count > 0 && (int64(len(files)) > opts.Count || total > opts.Bytes) {
		return refuse(fmt.Sprintf("more than was offered: %d files of %d bytes, the offer said %d of %d", len(files), total, opts.Count, opts.Bytes))
	}
	if opts.MaxSize > 0 && total > opts.MaxSize {
		return refuse(fmt.Sprintf("too big: %d bytes, this receiver takes at most %d", total, opts.MaxSize))
	}
	// Hashing big parts takes a while: the sender hears WAIT meanwhile, so
	// that it does not take the silence for a dead link.
	lastWait := time.Now()
	plan(root, files, func() {
		if l.idle > 0 && time.Since(lastWait) > l.idle/3 {
			l.send("WAIT")
			lastWait = time.Now()
		}
	})
	var need int64
	for _, f := range files {
		if f.skip == "" {
			need += f.size - f.have
		}
	}
	if free, ok := freeSpace(opts.Dir); ok && need > free {
		return refuse(fmt.Sprintf("not enough space: %d bytes needed, %d free", need, free))
	}
	for i, f := range files {
		switch {
		case f.skip != "":
			l.writeLine("SKIP", strconv.Itoa(i), f.skip)
		case f.have > 0:
			l.writeLine("HAVE", strconv.Itoa(i), strconv.FormatInt(f.have, 10), hex.EncodeToString(f.hasher().Sum(nil)))
		}
	}
	if err := l.send("GO"); err != nil {
		return nil, err
	}
	wanted := 0
	for _, f := range files {
		if f.skip == "" {
			wanted++
		}
	}
	var wire int64
	for _, f := range files {
		if f.skip == "" {
			wire += f.size - f.have
		}
	}
	if m != nil {
		m.Begin(wanted, total, wire)
	}

	results := make([]FileResult, len(files))
	for i, f := range files {
		results[i] = FileResult{Name: f.name, Size: f.size, Err: errors.New("not received")}
		if f.skip != "" {
			results[i].Err = errors.New(f.skip)
		}
	}
	dirs := &folders{root: root, sub: make(map[string]*folder)}
	defer dirs.close()
	for {
		if l.r.Buffered() == 0 && l.w.Buffered() > 0 {
			if err := l.flush(); err != nil { // answers go out before we wait
				return results, err
			}
		}
		verb, rest, err := l.expect("DATA", "DONE", "WAIT")
		if err != nil {
			return results, err
		}
		if verb == "WAIT" {
			continue // the sender is hashing what we already hold
		}
		if verb == "DONE" {
			break
		}
		args, err := fields(rest, 3, false)
		if err != nil {
			return results, err
		}
		idx, err := parseCount(args[0], int64(len(files)-1))
		if err != nil {
			return results, err
		}
		f := files[idx]
		off, err1 := parseCount(args[1], f.size)
		n, err2 := parseCount(args[2], f.size)
		switch {
		case err1 != nil || err2 != nil:
			return results, protoErr("bad DATA line")
		case f.skip != "" || f.done:
			return results, protoErr("DATA for file %d, which is not expected", idx)
		case off != 0 && off != f.have:
			return results, protoErr("DATA for file %d resumes at %d, not at %d", idx, off, f.have)
		case off+n != f.size && !(off == 0 && n == 0):
			return results, protoErr("DATA for file %d has %d bytes, not %d", idx, n, f.size-off)
		}
		f.done = true
		r := &results[idx]
		if off == 0 && n == 0 && f.size > 0 {
			// The sender gave this file up (it changed or cannot be read).
			if _, rest, err := l.expect("SUM"); err != nil {
				return results, err
			} else if a, _ := fields(rest, 2, false); len(a) != 2 || a[1] != "-" {
				return results, protoErr("empty DATA for a file that is not empty")
			}
			r.Err = errors.New("the sender could not send it (it changed or cannot be read)")
			continue
		}
		r.Resumed, r.Err = off, nil
		d, base, err := dirs.dir(f.name)
		var saved string
		if err != nil {
			err = skipData(l, n, err)
		} else {
			r.Hash, saved, err = receiveFile(d, l, f, base, off, n, opts, m)
		}
		if err != nil {
			r.Err = err
			if errors.Is(err, errLink) {
				return results, err
			}
			l.writeLine("BAD", strconv.Itoa(int(idx)), err.Error())
			continue
		}
		if dir := path.Dir(f.name); dir != "." {
			saved = dir + "/" + saved
		}
		if opts.Keep != nil {
			if saved, err = opts.Keep(saved, r.Hash); err != nil {
				r.Err = err
				l.writeLine("BAD", strconv.Itoa(int(idx)), err.Error())
				continue
			}
		}
		r.Moved, r.Path = n, saved
		l.writeLine("OK", strconv.Itoa(int(idx)), r.Hash, saved)
		if m != nil {
			m.FileDone(*r)
		}
	}
	if err := l.send("BYE"); err != nil {
		return results, err
	}
	return results, nil
}

// errLink marks a receive failure that broke the link (as opposed to one
// file failing).
var errLink = errors.New("link failed")

// readManifest reads FILES <count> <total>, the F lines and END.
func readManifest(l *Link) ([]*incoming, int64, error) {
	_, rest, err := l.expect("FILES")
	if err != nil {
		return nil, 0, err
	}
	args, err := fields(rest, 2, false)
	if err != nil {
		return nil, 0, err
	}
	count, err := parseCount(args[0], MaxOfferFiles)
	if err != nil {
		return nil, 0, err
	}
	total, err := parseCount(args[1], maxFileSize)
	if err != nil {
		return nil, 0, err
	}
	files := make([]*incoming, 0, count)
	var sum int64
	for i := range count {
		_, rest, err := l.expect("F")
		if err != nil {
			return nil, 0, err
		}
		a, err := fields(rest, 3, true)
		if err != nil {
			return nil, 0, err
		}
		if idx, err := parseCount(a[0], count); err != nil || idx != i {
			return nil, 0, protoErr("file %d announced as %q", i, clipText(a[0]))
		}
		size, err := parseCount(a[1], maxFileSize)
		if err != nil {
			return nil, 0, err
		}
		f := &incoming{size: size}
		if f.name, err = SafePath(unescapeName(a[2])); err != nil {
			f.name, f.skip = "file-"+strconv.FormatInt(i, 10), "no usable file name"
		}
		if sum += size; sum > maxFileSize {
			// Checked as it grows, so that it cannot wrap round.
			return nil, 0, protoErr("the files add up to more than %d bytes", int64(maxFileSize))
		}
		files = append(files, f)
	}
	if _, _, err := l.expect("END"); err != nil {
		return nil, 0, err
	}
	if sum != total {
		return nil, 0, protoErr("the files add up to %d bytes, not %d", sum, total)
	}
	return files, total, nil
}

// plan decides, for each file, whether it can be saved and how much of its
// .part can be kept (hashing that much into f.h). Folders are checked
// once each, and a folder with many of the offer's files is listed once
// rather than asked about each file's part.
func plan(root *os.Root, files []*incoming, tick func()) {
	seen := make(map[string]bool)
	perDir := make(map[string]int)
	for _, f := range files {
		if f.skip == "" {
			perDir[path.Dir(f.name)]++
		}
	}
	parents := make(map[string]string) // folder -> why it cannot be used ("" if fine)
	listings := make(map[string]map[string]bool)
	for _, f := range files {
		if f.skip != "" {
			continue
		}
		if seen[f.name] || seen[f.name+partSuffix] {
			f.skip = "the same name twice in one offer"
			continue
		}
		seen[f.name] = true
		dir := path.Dir(f.name)
		why, ok := parents[dir]
		if !ok {
			why = checkParents(root, f.name)
			parents[dir] = why
		}
		if why != "" {
			f.skip = why
			continue
		}
		part := f.name + partSuffix
		if perDir[dir] > 64 {
			names, ok := listings[dir]
			if !ok {
				names = listDir(root, dir)
				listings[dir] = names
			}
			if names != nil && !names[path.Base(part)] {
				continue // no part to resume
			}
		}
		fi, err := root.Lstat(part)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			f.skip = "cannot check " + part + ": " + errText(err)
			continue
		case !fi.Mode().IsRegular():
			f.skip = part + " exists and is not a regular file"
			continue
		}
		f.skip = planPart(root, f, part, fi.Size(), tick)
	}
}

// planPart looks at an existing NAME.part: someone's own file is refused,
// one that another transfer holds too; a prefix of the file (as far as its
// size goes) is hashed, with tick called as it goes, for HAVE. It returns
// why the file is refused, or "".
func planPart(root *os.Root, f *incoming, part string, size int64, tick func()) string {
	pf, err := root.OpenFile(part, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "cannot open " + part + ": " + errText(err)
	}
	defer pf.Close()
	if !isPart(pf) {
		return part + " exists and is not a partial download of qchat's"
	}
	if lockPart(pf, false) != nil {
		return "another transfer is receiving " + f.name
	}
	defer unlockPart(pf)
	if size > f.size {
		return "" // not a prefix of this file: it will be started again
	}
	buf := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(buf)
	var n int64
	for {
		k, err := pf.Read(*buf)
		f.hasher().Write((*buf)[:k])
		n += int64(k)
		tick()
		if err != nil {
			break
		}
	}
	fi, err := pf.Stat()
	if err != nil || n != size || fi.Size() != size {
		f.hasher().Reset()
		return ""
	}
	f.have, f.part = n, fi
	return ""
}

// listDir returns the names in a folder: empty for a folder that does
// not exist yet, nil when it cannot be read (then each name is checked).
func listDir(root *os.Root, dir string) map[string]bool {
	d, err := root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}
	}
	if err != nil {
		return nil
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// checkParents refuses a path whose folders exist as something else than
// plain folders (a symlink planted in the receiving folder, a file).
func checkParents(root *os.Root, name string) string {
	dir := path.Dir(name)
	if dir == "." {
		return ""
	}
	p := ""
	for _, e := range splitPath(dir) {
		p = path.Join(p, e)
		fi, err := root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return ""
		}
		if err != nil {
			return "cannot check " + p + ": " + errText(err)
		}
		if !fi.IsDir() {
			return p + " exists and is not a folder"
		}
	}
	return ""
}

func splitPath(p string) []string {
	var out []string
	for p != "" {
		i := 0
		for i < len(p) && p[i] != '/' {
			i++
		}
		out = append(out, p[:i])
		if i == len(p) {
			break
		}
		p = p[i+1:]
	}
	return out
}

// folders opens the folders that received files go into, once each, as
// roots of their own below the receiving folder (so that a thousand files
// in one folder cost one walk of its path, not a thousand).
type folders struct {
	root *os.Root
	sub  map[string]*folder
}

// folder is one folder received files go into.
type folder struct {
	root *os.Root
	f    *os.File // the folder itself, for renames relative to it
}

// dir returns name's folder, created if needed, and name's base name.
func (fs *folders) dir(name string) (*folder, string, error) {
	dir, base := path.Split(name)
	dir = path.Clean(dir)
	if d := fs.sub[dir]; d != nil {
		return d, base, nil
	}
	r := fs.root
	if dir != "." {
		if err := fs.root.MkdirAll(dir, 0o755); err != nil {
			return nil, "", fmt.Errorf("create folder %s: %s", dir, errText(err))
		}
		var err error
		if r, err = fs.root.OpenRoot(dir); err != nil {
			return nil, "", fmt.Errorf("open folder %s: %s", dir, errText(err))
		}
	}
	f, err := r.Open(".")
	if err != nil {
		if r != fs.root {
			r.Close()
		}
		return nil, "", fmt.Errorf("open folder %s: %s", dir, errText(err))
	}
	d := &folder{root: r, f: f}
	fs.sub[dir] = d
	return d, base, nil
}

func (fs *folders) close() {
	for _, d := range fs.sub {
		d.f.Close()
		if d.root != fs.root {
			d.root.Close()
		}
	}
}

// receiveFile writes n bytes at off into NAME.part (name is the base name
// in folder d), checks the SUM line that follows against the hash of the
// whole part, and renames it into place (finalize) while it still holds
// the part: no other transfer can write into it from open to rename. It
// returns the hash and the name saved under.
func receiveFile(d *folder, l *Link, f *incoming, name string, off, n int64, opts ReceiveOptions, m Meter) (string, string, error) {
	part := name + partSuffix
	out, err := d.root.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	created := err == nil
	if errors.Is(err, fs.ErrExist) {
		out, err = d.root.OpenFile(part, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	}
	if err != nil {
		return "", "", skipData(l, n, fmt.Errorf("create %s: %s", part, errText(err)))
	}
	defer out.Close()
	if err := lockPart(out, true); err != nil {
		return "", "", skipData(l, n, fmt.Errorf("another transfer is receiving %s", f.name))
	}
	if created {
		markPart(out)
	} else if !isPart(out) {
		return "", "", skipData(l, n, fmt.Errorf("%s exists and is not a partial download of qchat's", part))
	}
	if off > 0 {
		// Resuming: the part must be the one whose prefix was hashed.
		fi, err := out.Stat()
		if err != nil || f.part == nil || !os.SameFile(fi, f.part) || fi.Size() != f.part.Size() || !fi.ModTime().Equal(f.part.ModTime()) {
			return "", "", skipData(l, n, fmt.Errorf("%s changed while it was offered; offer it again", part))
		}
	} else {
		f.hasher().Reset()
	}
	if err := out.Truncate(off); err != nil {
		return "", "", skipData(l, n, err)
	}
	if _, err := out.Seek(off, io.SeekStart); err != nil {
		return "", "", skipData(l, n, err)
	}
	var werr error
	err = pipe(n, func(b []byte) error {
		// Each read must come within the idle timeout, not each chunk: a
		// slow link that moves is not a stalled one.
		for got := 0; got < len(b); {
			l.readDeadline()
			k, err := l.r.Read(b[got:])
			got += k
			if err != nil && got < len(b) {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return fmt.Errorf("%w: %v", errLink, err)
			}
		}
		return nil
	}, func(b []byte) error {
		f.hasher().Write(b)
		if werr == nil {
			if _, err := out.Write(b); err != nil {
				werr = err // keep reading: the link stays in step
			}
		}
		if m != nil {
			m.Bytes(len(b))
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	_, rest, err := l.expect("SUM")
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", errLink, err)
	}
	a, err := fields(rest, 2, false)
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", errLink, err)
	}
	if werr != nil {
		if opts.DropOnWriteError {
			d.root.Remove(part) // still under our lock
		}
		return "", "", fmt.Errorf("write %s: %s", part, errText(werr))
	}
	sum := hex.EncodeToString(f.hasher().Sum(nil))
	f.h = nil // done with it
	if a[1] != sum {
		// Not what was sent: never keep it, never resume from it.
		d.root.Remove(part)
		return "", "", fmt.Errorf("hash mismatch: got %s, sender says %s", sum, clipText(a[1]))
	}
	saved, err := finalize(d, name, opts.Overwrite)
	if err != nil {
		return "", "", err
	}
	return sum, saved, nil
}

// skipData reads and drops the n bytes and the SUM of a file that cannot
// be written, so that the link stays in step; err is the file's failure.
func skipData(l *Link, n int64, err error) error {
	for n > 0 { // in chunks, each within the idle timeout
		l.readDeadline()
		k, cerr := io.CopyN(io.Discard, l.r, min(n, 64<<10))
		n -= k
		if cerr != nil {
			return fmt.Errorf("%w: %v", errLink, cerr)
		}
	}
	if _, _, cerr := l.expect("SUM"); cerr != nil {
		return fmt.Errorf("%w: %v", errLink, cerr)
	}
	return err
}

// finalize renames NAME.part to NAME, or to the first free "NAME (n).ext"
// unless overwrite is set; it returns the name used. name is a base name
// in the folder d.
func finalize(d *folder, name string, overwrite bool) (string, error) {
	root := d.root
	part := name + partSuffix
	if overwrite {
		if fi, err := root.Lstat(name); err == nil && fi.IsDir() {
			return "", fmt.Errorf("%s is a folder", name)
		}
		if err := root.Rename(part, name); err != nil {
			return "", errors.New(errText(err))
		}
		return name, nil
	}
	for n := 0; n <= 9999; n++ {
		cand := name
		if n > 0 {
			cand = numbered(name, n)
		}
		// Only if the name is free, and atomically: no race can make us
		// replace a file that appeared meanwhile.
		err := renameNoReplace(d, part, cand)
		if err == nil {
			return cand, nil
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return "", errors.New(errText(err))
	}
	return "", fmt.Errorf("no free name for %s", name)
}

// linkNoReplace is renameNoReplace where the system has no rename that
// refuses to replace: a hard link fails when the name exists; then the
// part goes. Where hard links are not possible either, it checks, then
// renames.
func linkNoReplace(root *os.Root, from, to string) error {
	err := root.Link(from, to)
	if err == nil {
		root.Remove(from)
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return err
	}
	if _, lerr := root.Lstat(to); !errors.Is(lerr, fs.ErrNotExist) {
		return fs.ErrExist
	}
	return root.Rename(from, to)
}

// errText is an error without the path that os puts in front, which would
// show the receiver's folder to the sender.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Op + ": " + le.Err.Error()
	}
	return err.Error()
}
