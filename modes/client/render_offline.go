package client

import (
	"fmt"
	"strings"

	"qchat/protocol"
	"qchat/xfer"
)

// Item is f as a JSON item.
func (f OfflineFile) Item() OfflineItem {
	return OfflineItem{FileID: f.ID, From: f.From, FromNick: f.FromNick, Name: f.Name, Size: f.Size, Left: protocol.FormatTime(f.Time)}
}

// Label is f for people: "report.pdf (20.0 MiB) from alice (1001), left [Mon 14:02]".
func (p *Printer) offlineLabel(f OfflineFile) string {
	return fmt.Sprintf("%s (%s) from %s, left %s", protocol.Escape(f.Name), FormatBytes(f.Size), Name(f.From, f.FromNick), p.Stamp(f.Time))
}

// Offline prints a file waiting for me on the server, and how to take it.
func (p *Printer) Offline(f OfflineFile) string {
	return p.Emit(&OfflineRecord{Head: NewHeadAt("offline", f.Time), OfflineItem: f.Item()},
		fmt.Sprintf("* %s left %s (%s) for you on the server: /get %d to take it, /reject %d file to refuse it",
			Name(f.From, f.FromNick), protocol.Escape(f.Name), FormatBytes(f.Size), f.ID, f.From))
}

// OfflineList is /files: the object and the lines to print (a result:
// the command puts itself in).
func (p *Printer) OfflineList(fs []OfflineFile) (any, string) {
	items := make([]OfflineItem, len(fs))
	lines := make([]string, 0, len(fs)+1)
	for i, f := range fs {
		items[i] = f.Item()
		lines = append(lines, fmt.Sprintf("  %d  %s", f.ID, p.offlineLabel(f)))
	}
	if len(fs) == 0 {
		lines = append(lines, "no offline files wait for you")
	} else {
		lines = append([]string{Plural(len(fs), "offline file") + " (/get ID to take one):"}, lines...)
	}
	return &OfflineListRecord{Result: NewResult("offline_files"), Files: items}, strings.Join(lines, "\n")
}

// FileLeft prints one file left on the server for to.
func (p *Printer) FileLeft(to User, f xfer.FileResult) string {
	plain := fmt.Sprintf("left %s (%s) on the server for %s blake3 %s: they are told when they log in, you when they take it",
		protocol.Escape(f.Name), FormatBytes(f.Size), Name(to.ID, to.Nick), f.Hash)
	if f.Resumed > 0 {
		plain += fmt.Sprintf(" (resumed at %s, %s this time)", FormatBytes(f.Resumed), FormatBytes(f.Moved))
	}
	return p.Emit(&FileRecord{Head: NewHead("file_left"), To: to.ID, ToNick: to.Nick, Name: f.Name, Size: f.Size, BLAKE3: f.Hash,
		Path: f.Path, Moved: f.Moved, Resumed: f.Resumed, Via: "server"}, plain)
}
