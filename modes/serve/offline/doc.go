// Package offline owns the offline files of `serve --offline-files`: the
// bytes of files left on the server for a user who was not there to take
// them, under the data folder, and the rules around them — a quota per
// sender, a free-space check, a maximum age.
//
// On disk, below <data>/offline:
//
//	files/<hash>                      a file's bytes, named by their BLAKE3 hash
//	                                  (one copy however many rows hold it)
//	incoming/<sender>-<recipient>/    uploads under way: NAME.part (xfer writes,
//	                                  verifies and renames it), moved to files/
//	                                  once verified
//
// Nothing in files/ is ever half-written: a file gets there by one rename,
// after xfer checked its hash. What a broken upload left in incoming/ is
// what the next upload of the same file resumes from; incoming folders in
// which nothing changed for the maximum age go with the expiry, and files
// no row holds (a crash between the rename and the row) at start.
//
// It knows the store (the offline_files rows) and the file system, and
// must not know sessions, the protocol or links: the server's handlers
// (modes/serve) run the links through xfer and call in here.
package offline
