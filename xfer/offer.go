package xfer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
)

// Item is one file of an offer: where it is here and the relative,
// slash-separated name it is offered under (a folder's files keep their
// path below the folder's name).
type Item struct {
	Local string
	Name  string
	Size  int64
}

// Offer is what a sender offers in one go: files and folders.
type Offer struct {
	Items   []Item
	Total   int64
	Skipped []string // what was left out, and why (symlinks, devices, unreadable)
}

// Summary is the offer as the server passes it on: the number of files,
// the bytes in all, and a display name (the file's name, "folder/", or
// "N files").
func (o *Offer) Summary() (count int, total int64, name string) {
	count, total = len(o.Items), o.Total
	switch {
	case count == 1:
		name = path.Base(o.Items[0].Name)
	case count > 1:
		top := topDir(o.Items[0].Name)
		for _, it := range o.Items[1:] {
			if topDir(it.Name) != top {
				top = ""
				break
			}
		}
		if top != "" {
			name = top + "/"
		} else {
			name = strconv.Itoa(count) + " files"
		}
	}
	return count, total, name
}

func topDir(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			return name[:i]
		}
	}
	return ""
}

// NewOffer collects the regular files of paths: a file is offered under
// its base name, a folder with everything below it under the folder's base
// name. Symlinks and special files are skipped (and listed in Skipped);
// an offer with no file at all is an error.
func NewOffer(paths ...string) (*Offer, error) {
	o := &Offer{}
	seen := make(map[string]bool)
	add := func(local, name string, size int64) error {
		if seen[name] {
			o.Skipped = append(o.Skipped, local+": offered twice under the name "+name)
			return nil
		}
		if len(o.Items) >= MaxOfferFiles {
			return fmt.Errorf("more than %d files in one offer", MaxOfferFiles)
		}
		seen[name] = true
		o.Items = append(o.Items, Item{Local: local, Name: name, Size: size})
		o.Total += size
		return nil
	}
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		base := filepath.Base(filepath.Clean(p))
		switch {
		case fi.Mode().IsRegular():
			if err := add(p, base, fi.Size()); err != nil {
				return nil, err
			}
		case fi.IsDir():
			err := filepath.WalkDir(p, func(local string, d fs.DirEntry, err error) error {
				if err != nil {
					o.Skipped = append(o.Skipped, local+": "+err.Error())
					if d != nil && d.IsDir() {
						return fs.SkipDir
					}
					return nil
				}
				if d.IsDir() {
					return nil
				}
				info, err := d.Info()
				if err != nil {
					o.Skipped = append(o.Skipped, local+": "+err.Error())
					return nil
				}
				if !info.Mode().IsRegular() {
					o.Skipped = append(o.Skipped, local+": not a regular file")
					return nil
				}
				rel, err := filepath.Rel(p, local)
				if err != nil {
					return err
				}
				return add(local, base+"/"+filepath.ToSlash(rel), info.Size())
			})
			if err != nil {
				return nil, err
			}
		default:
			o.Skipped = append(o.Skipped, p+": not a regular file or folder")
		}
	}
	if len(o.Items) == 0 {
		return nil, errors.New("nothing to send: no regular file in the paths given")
	}
	return o, nil
}

// Remaining returns the offer without the files named in done.
func (o *Offer) Remaining(done map[string]bool) *Offer {
	r := &Offer{}
	for _, it := range o.Items {
		if !done[it.Name] {
			r.Items = append(r.Items, it)
			r.Total += it.Size
		}
	}
	return r
}
