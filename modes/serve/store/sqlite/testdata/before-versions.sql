-- A data folder of qchat before schema versions (commit f66e016): the
-- qchat.db of a server run by that commit's binary, dumped as SQL. Four
-- accounts (alice 1000, bob 1001, carol 1002, dave 1003); alice's profile;
-- alice and bob friends, carol's request to alice, dave blocks carol;
-- #Team (invite-only, alice and bob, carol invited) and #open (dave and
-- alice); in the inbox the friend and invite events, bob's offline message
-- k.1; group messages stored once (#Team's k.2 waits for bob, #open's for
-- alice); dave's k.4 to carol acknowledged (sent_ids). Made with:
--   qchat serve --data data --tls off --hash-cost 4 (all passwords: pw)
-- and a client speaking the protocol; see upgrade_test.go.
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE users (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	nick    TEXT NOT NULL,
	nickkey TEXT NOT NULL UNIQUE,
	pwhash  TEXT NOT NULL,
	created INTEGER NOT NULL
);
CREATE TABLE inbox (
	recipient INTEGER NOT NULL,
	id        INTEGER NOT NULL,
	kind      TEXT NOT NULL,
	sender    INTEGER NOT NULL,
	nick      TEXT NOT NULL,
	time      INTEGER NOT NULL,
	body      TEXT NOT NULL,
	cid       TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (recipient, id)
);
CREATE TABLE profiles (
	user    INTEGER PRIMARY KEY,
	sex     TEXT NOT NULL DEFAULT '',
	age     INTEGER NOT NULL DEFAULT 0,
	address TEXT NOT NULL DEFAULT '',
	status  TEXT NOT NULL DEFAULT ''
);
CREATE TABLE friends (
	user   INTEGER NOT NULL,
	friend INTEGER NOT NULL,
	since  INTEGER NOT NULL,
	PRIMARY KEY (user, friend)
);
CREATE TABLE friend_requests (
	sender    INTEGER NOT NULL,
	recipient INTEGER NOT NULL,
	time      INTEGER NOT NULL,
	PRIMARY KEY (sender, recipient)
);
CREATE TABLE blocks (
	user    INTEGER NOT NULL,
	blocked INTEGER NOT NULL,
	PRIMARY KEY (user, blocked)
);
CREATE TABLE chatgroups (
	name    TEXT NOT NULL,
	namekey TEXT PRIMARY KEY,
	owner   INTEGER NOT NULL,
	invite  INTEGER NOT NULL,
	created INTEGER NOT NULL
);
CREATE TABLE members (
	namekey TEXT NOT NULL,
	user    INTEGER NOT NULL,
	joined  INTEGER NOT NULL,
	acked   INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (namekey, user)
);
CREATE TABLE invites (
	namekey TEXT NOT NULL,
	user    INTEGER NOT NULL,
	inviter INTEGER NOT NULL,
	time    INTEGER NOT NULL,
	PRIMARY KEY (namekey, user)
);
CREATE TABLE sent_ids (
	sender INTEGER NOT NULL,
	cid    TEXT NOT NULL,
	msgid  INTEGER NOT NULL,
	time   INTEGER NOT NULL,
	PRIMARY KEY (sender, cid)
);
CREATE TABLE group_msgs (
	id      INTEGER PRIMARY KEY,
	namekey TEXT NOT NULL,
	sender  INTEGER NOT NULL,
	nick    TEXT NOT NULL,
	time    INTEGER NOT NULL,
	body    TEXT NOT NULL,
	cid     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX inbox_cid ON inbox (sender, cid) WHERE cid <> '';
CREATE INDEX group_msgs_key ON group_msgs (namekey, id);
CREATE INDEX group_msgs_cid ON group_msgs (sender, cid) WHERE cid <> '';
INSERT INTO meta VALUES ('msgid_hi', '1048576');
INSERT INTO users VALUES (1000, 'alice', 'alice', '$2a$04$zrBZGln.JYao08jlVy1rDejCYKJwXvqjTJo.g3taey7MlAH6UT.X6', 1796226062);
INSERT INTO users VALUES (1001, 'bob', 'bob', '$2a$04$fuGbLszzlGKBCnMP4EOmrOwa2NBABKso6OXRMaE3Z4YHyx/0R5rlG', 1796226062);
INSERT INTO users VALUES (1002, 'carol', 'carol', '$2a$04$nX7fNu7Z1I8SH4dXNaTd0uz/13EqCTUoK6p.RI6yflUDhpqNxUFhi', 1796226062);
INSERT INTO users VALUES (1003, 'dave', 'dave', '$2a$04$7h/IEf.1OUYom7.jUnkJL.czMNvj9GGW.hHSgKVy9eObEmq3Bao4G', 1796226062);
INSERT INTO inbox VALUES (1001, 1, 'REQUEST', 1000, 'alice', 1796226062774, 'friend', '');
INSERT INTO inbox VALUES (1001, 4, 'REQUEST', 1000, 'alice', 1796226062777, 'invite #Team', '');
INSERT INTO inbox VALUES (1001, 7, 'MSG', 1000, 'alice', 1796226062780, 'stored one', 'k.1');
INSERT INTO inbox VALUES (1000, 2, 'NOTICE', 1001, 'bob', 1796226062774, 'friend-accepted', '');
INSERT INTO inbox VALUES (1000, 3, 'REQUEST', 1002, 'carol', 1796226062775, 'friend', '');
INSERT INTO inbox VALUES (1000, 5, 'NOTICE', 1001, 'bob', 1796226062778, 'invite-accepted #Team', '');
INSERT INTO inbox VALUES (1002, 6, 'REQUEST', 1000, 'alice', 1796226062779, 'invite #Team', '');
INSERT INTO profiles VALUES (1000, '', 33, 'Hangzhou', 'hello from before');
INSERT INTO friends VALUES (1001, 1000, 1796226062);
INSERT INTO friends VALUES (1000, 1001, 1796226062);
INSERT INTO friend_requests VALUES (1002, 1000, 1796226062775);
INSERT INTO blocks VALUES (1003, 1002);
INSERT INTO chatgroups VALUES ('Team', 'team', 1000, 1, 1796226062);
INSERT INTO chatgroups VALUES ('open', 'open', 1003, 0, 1796226062);
INSERT INTO members VALUES ('team', 1000, 1796226062776, 10);
INSERT INTO members VALUES ('team', 1001, 1796226062777, 4);
INSERT INTO members VALUES ('open', 1003, 1796226062779, 11);
INSERT INTO members VALUES ('open', 1000, 1796226062779, 9);
INSERT INTO invites VALUES ('team', 1002, 1000, 1796226062778);
INSERT INTO sent_ids VALUES (1003, 'k.4', 11, 1796226066403);
INSERT INTO group_msgs VALUES (8, 'team', 1000, 'alice', 1796226062782, '#Team group stored', 'k.2');
INSERT INTO group_msgs VALUES (10, 'open', 1003, 'dave', 1796226062824, '#open open hello', '');
INSERT INTO sqlite_sequence VALUES ('users', 1003);
