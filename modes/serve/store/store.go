package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Sentinel errors; the server maps them to replies.
var (
	ErrNoUser     = errors.New("no such user")
	ErrNickTaken  = errors.New("nickname taken")
	ErrGroupTaken = errors.New("group name taken")
	// ErrNoOfflineFile: no offline file has that id (any more).
	ErrNoOfflineFile = errors.New("no such offline file")
)

// FirstUserID is the id of the first account, as in the original QQ
// design. Account ids are numeric, increase, and are never given twice,
// not even after the account is gone, a crash, or on another node: gaps
// are allowed (PostgreSQL burns an id on a failed insert).
const FirstUserID = 1000

// SentIDsKept is how long the client id of a stored message is kept after
// the message was sent: a resend later than that is a new message.
const SentIDsKept = 24 * time.Hour

// NickKey is the form in which nicknames are compared (nickkey column).
func NickKey(nick string) string { return strings.ToLower(nick) }

// GroupKey is the form in which group names are compared (namekey).
func GroupKey(name string) string { return strings.ToLower(name) }

// Store is everything the server writes through and reads back at start.
// Both implementations pass storetest.Run.
//
// Writes that change one thing (accounts, profiles, friends, groups,
// ReserveIDs) are each one transaction and return once committed. The
// message path does not wait: SaveInbox calls back once committed,
// DeleteInbox and MoveCursor queue and return at once. All of them are
// applied in the order called by one writer, which commits whatever has
// queued up in one transaction (group commit), so a burst of N writes
// costs one sync, not N.
type Store interface {
	// CreateUser adds an account and returns its new id; ErrNickTaken
	// when the nickname is taken in any case.
	CreateUser(ctx context.Context, nick, pwhash string) (int64, error)
	// UserByID and UserByNick (any case) look an account up; ErrNoUser.
	UserByID(ctx context.Context, id int64) (User, error)
	UserByNick(ctx context.Context, nick string) (User, error)
	// Users returns every account, in id order.
	Users(ctx context.Context) ([]User, error)
	// SetNick renames an account (ErrNickTaken); SetPassword replaces
	// its password hash; SetProfile its profile.
	SetNick(ctx context.Context, user int64, nick string) error
	SetPassword(ctx context.Context, user int64, pwhash string) error
	SetProfile(ctx context.Context, user int64, p Profile) error

	// LoadSocial reads every profile, friendship, request, block, group,
	// membership and invite.
	LoadSocial(ctx context.Context) (*Social, error)
	// AddFriendRequest records that from asked to to (again: no change);
	// DropFriendRequest forgets it.
	AddFriendRequest(ctx context.Context, from, to int64) error
	DropFriendRequest(ctx context.Context, from, to int64) error
	// MakeFriends records a friendship both ways and drops the requests
	// between the two; Unfriend ends it both ways.
	MakeFriends(ctx context.Context, a, b int64) error
	Unfriend(ctx context.Context, a, b int64) error
	// Block records that user blocks other, and drops other's request to
	// user; with block false it undoes the block.
	Block(ctx context.Context, user, other int64, block bool) error
	// CreateGroup creates a group with its owner as the first member
	// (ErrGroupTaken when the name is taken in any case). from is the last
	// message id given out: the owner's cursor starts there.
	CreateGroup(ctx context.Context, name string, owner int64, invite bool, created time.Time, from int64) error
	// AddMember adds user to a group (its cursor at from, so it gets no
	// stored message from before it joined) and drops its invite.
	AddMember(ctx context.Context, name string, user int64, from int64) error
	// RemoveMember takes user out of a group. A newOwner, when not 0,
	// takes over; with last, the group goes with its invites and stored
	// messages. The stored messages that only user's cursor held go (their
	// client ids kept).
	RemoveMember(ctx context.Context, name string, user, newOwner int64, last bool) error
	// AddInvite records (or renews) an invitation; DropInvite forgets it.
	AddInvite(ctx context.Context, name string, user, inviter int64) error
	DropInvite(ctx context.Context, name string, user int64) error

	// SaveInbox queues items for durable storage; callback (may be nil)
	// runs once they are committed, or failed, on the writer's goroutine:
	// it must not block, and may call DeleteInbox and MoveCursor. A group
	// message (GroupKey set) is written once however many of its members'
	// copies items holds; a copy whose id is stored already is no error.
	SaveInbox(items []Item, callback func(error))
	// DeleteInbox queues the removal of a recipient's acknowledged items,
	// with the client ids of those items to keep (the same transaction: a
	// resend is recognised by the row or by the kept id, never neither).
	// It never blocks and nothing waits for it; if it fails the rows stay
	// and come again, which clients drop by id.
	DeleteInbox(recipient int64, ids []int64, sent ...SentID)
	// MoveCursor queues a move of user's cursor in group (a GroupKey) up
	// to to, never down; with lower, down to below to+1, never up. Then
	// the group's stored messages every cursor has passed go. It never
	// blocks; moves and deletions are applied in the order queued.
	MoveCursor(user int64, group string, to int64, lower bool)
	// Inbox returns a recipient's stored items in id order: its own rows
	// and its groups' stored messages past its cursors, less its own and
	// those from senders it blocks.
	Inbox(ctx context.Context, recipient int64) ([]Item, error)
	// InboxSenders counts the items Inbox would return, for every
	// recipient, by {recipient, sender}.
	InboxSenders(ctx context.Context) (map[[2]int64]int, error)
	// GroupsStored returns, for each group with stored messages, the
	// highest id stored.
	GroupsStored(ctx context.Context) (map[string]int64, error)
	// FindSent looks a message up by its sender and client id.
	FindSent(ctx context.Context, sender int64, cid string) (FoundSent, error)
	// ReserveIDs durably moves the message-id high-water mark up by n and
	// returns the range (lo, hi] now reserved: above every range reserved
	// before, by this process or any other on the same database, also
	// across restarts and crashes. Ids are never given twice.
	ReserveIDs(ctx context.Context, n int64) (lo, hi int64, err error)

	// Archive queues messages for the history archive (serve
	// --history-days): a private message once, a group message once for
	// all its members (GroupKey set, Recipient 0). callback (may be nil)
	// runs once they are committed, or failed, on the writer's goroutine,
	// and must not block. A message archived already is no error.
	Archive(items []Item, callback func(error))
	// History returns archived messages of q.User, at most q.Limit of
	// them, in id order: the conversation with q.Peer, or in q.Group
	// (a GroupKey), or every conversation of the user when both are
	// empty. A group's messages count only while the user is a member,
	// and only those after the from it joined with (CreateGroup,
	// AddMember). See HistoryQuery.
	History(ctx context.Context, q HistoryQuery) ([]Item, error)
	// PruneArchive deletes the archived messages sent before before and
	// says how many went.
	PruneArchive(ctx context.Context, before time.Time) (int64, error)

	// AddOfflineFile records a file left on the server for its recipient
	// (serve --offline-files) and returns its id, once committed. Ids
	// increase and are never given twice.
	AddOfflineFile(ctx context.Context, f OfflineFile) (int64, error)
	// OfflineFile looks one up by id; ErrNoOfflineFile.
	OfflineFile(ctx context.Context, id int64) (OfflineFile, error)
	// OfflineFiles returns the offline files that match q, in id order.
	OfflineFiles(ctx context.Context, q OfflineQuery) ([]OfflineFile, error)
	// DropOfflineFile deletes a file's row (taken, refused or expired) and
	// says whether another row still holds the same hash, whose bytes must
	// then stay; ErrNoOfflineFile when there is no such row (any more).
	DropOfflineFile(ctx context.Context, id int64) (hashHeld bool, err error)
	// SpendToken records that the resumption token id (good until
	// expires) was used, and says whether it was the first use: false
	// when it was recorded before, by any server on this database (the
	// nodes of a cluster share it). PruneTokens forgets those expired
	// before before.
	SpendToken(ctx context.Context, id string, expires time.Time) (first bool, err error)
	PruneTokens(ctx context.Context, before time.Time) error
	// Close finishes the queued writes and closes the database.
	Close() error
}

// OfflineFile is one file left on the server for a user who was not there
// to take it. Its bytes are kept by hash, outside the database.
type OfflineFile struct {
	ID        int64
	Sender    int64
	Recipient int64
	Name      string // the name it was sent under (a relative path, made safe)
	Size      int64
	Hash      string    // BLAKE3 of the bytes, 64 hex digits
	Created   time.Time // kept to the millisecond
}

// OfflineQuery selects offline files: those for a Recipient, or from a
// Sender, or left Before a time (the first of these that is set), or all.
type OfflineQuery struct {
	Recipient int64
	Sender    int64
	Before    time.Time
}

// HistoryQuery is one page of the history archive. Forward, it is the
// first Limit messages with an id above After; otherwise the last Limit
// with an id below Before (0: no bound). Below (> 0) excludes ids
// from it up (the server's archive watermark); Since excludes messages
// sent before it (older than the retention).
type HistoryQuery struct {
	User    int64
	Peer    int64  // a private conversation, or
	Group   string // a group's GroupKey, or neither: every conversation
	Forward bool
	After   int64
	Before  int64
	Below   int64
	Since   time.Time
	Limit   int
}

// User is one account as stored.
type User struct {
	ID      int64
	Nick    string
	PwHash  string
	Created time.Time // to the second
}

// Item is one durable event waiting for its recipient.
type Item struct {
	Recipient int64
	ID        int64
	Kind      string // the event kind: MSG, GMSG, REQUEST or NOTICE
	Sender    int64
	Nick      string    // the sender's nickname when it was sent
	Time      time.Time // kept to the millisecond
	Body      string
	CID       string // the sender's client id for it (MSG id=<cid>), "" for none
	// GroupKey is, for a group message, its group's GroupKey: it is stored
	// once for all members, and each member's cursor says whether it still
	// waits for them. "" for everything else, stored per recipient.
	GroupKey string
}

// SentID is the client id of a message whose stored copy is acknowledged:
// kept so that a resend is still recognised.
type SentID struct {
	Sender int64
	CID    string
	ID     int64
	Time   time.Time
}

// FoundSent is what the store knows of a message by its client id.
type FoundSent struct {
	ID      int64     // the message id, 0 when nothing was found
	Time    time.Time // when it was sent
	Pending []int64   // recipients whose stored copy waits for their ACK
	Acked   bool      // some stored copy was acknowledged
}

// Profile is what a user may change of their account: the public part,
// and their own settings.
type Profile struct {
	Sex     string // "", "male", "female" or "other"
	Age     int    // 0 when not given
	Address string
	Status  string // a status line, shown with presence

	// Settings, shown to nobody else. With NoReceipts the server passes
	// on no delivery or read receipt from the user or to the user; with
	// NoTyping, no typing notification. The zero value is on, as for
	// accounts made before these settings.
	NoReceipts bool
	NoTyping   bool
}

// Social is every social row, as loaded at start.
type Social struct {
	Profiles map[int64]Profile
	Friends  []Pair // both directions are stored
	Requests []Pair // A asked B, oldest first
	Blocks   []Pair // A blocks B
	Groups   []Group
	Members  []Member // in joining order
	Invites  []Invite // oldest first
}

// Pair is two accounts in a relation.
type Pair struct{ A, B int64 }

// Group is a group as stored (its members apart).
type Group struct {
	Name    string
	Owner   int64
	Invite  bool // invite-only
	Created time.Time
}

// Member is a user in a group (Key is the GroupKey).
type Member struct {
	Key  string
	User int64
}

// Invite is an invitation of User into a group by Inviter.
type Invite struct {
	Key           string
	User, Inviter int64
}
