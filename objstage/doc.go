// Package objstage is the staging area on an S3-compatible object store,
// shared by any number of bridges: an uploads.Backend whose state is the
// bucket's, so that a file uploaded through one bridge is listed by every
// other and delivered once, by whichever serves the next session of its
// (user, app).
//
// # Objects
//
// Under the prefix of --staging-url (P below), with U and A the hashes of
// the user and app (as the local staging area names its directories, so
// any identity is safe in a key) and NAME a file's relative path in
// base64url (RFC 4648 section 5, no padding), so that no user-chosen name
// is ever a key's structure:
//
//	P/s/U/A/f/NAME/VERSION   a pending file: an empty object whose key says it all
//	P/s/U/A/d/NAME/VERSION   a directory (mkdir): an empty object
//	P/b/U/A/ID               the file's bytes, encrypted
//	P/l/U/A/ID               the lease of a delivery (or of a rename, chmod,
//	                         removal or expiry) of the file ID
//
// A file's VERSION is CREATED.ID.SIZE.MODE.MTIME: when it became pending
// (16 hex digits of Unix nanoseconds), its random 128-bit ID (32 hex
// digits), its plaintext size in bytes, its permission bits in octal and
// its modification time in Unix nanoseconds; a directory's is
// CREATED.MODE. One listing (ListObjectsV2) of P/s/U/A/ is thus the
// whole tree, and one of P/s/U/ the user's usage for the quota.
//
// A file becomes pending when its entry is written, which happens only
// after its blob is stored whole: a bridge that dies in between leaves an
// orphan blob, which the sweeper removes. An entry's key is never
// rewritten in place: a rename or a chmod writes the new entry, then
// removes the old, under the file's lease; a new upload of a name writes a
// new entry, which shadows the older ones (the newest CREATED wins), and
// removes them unless a delivery holds them.
//
// # Encryption
//
// Blobs are DARE 2.0 streams (github.com/minio/sio: AES-256-GCM in
// packages of 64 KiB, each authenticated with its sequence number, the
// last one marked final, so that a reordered, altered or truncated object
// fails to decrypt). Each blob's key is HKDF-SHA256 of the operator's key
// (--staging-key-file) with the blob's ID as info, so no two objects share
// a key and a blob moved under another ID does not decrypt. The store
// never holds a byte of a file in clear; names, sizes, modes and times are
// in keys (names in base64, not encrypted).
//
// # Leases
//
// A delivery takes, for each file, a lease: an object written with
// If-None-Match: * (a 412 means another bridge holds it). A lease names
// its holder and when it expires (--staging-lease from its last renewal);
// a bridge that finds an expired one takes it over with If-Match: ETAG, so
// that of two bridges only one wins. The holder renews it while the
// delivery runs, and deletes the files' objects only at Commit, once the
// one-off has attached; Release deletes the leases alone. Leases compare
// the bridges' clocks: keep them in sync (NTP), well within the lease.
//
// # Uploads
//
// SFTP writes land in a spool file on the bridge's disk (unlinked at once,
// so a crash leaves nothing) at their offsets, in any order, bounded for
// all uploads together by --staging-spool-size. While the transfer runs,
// the part written without holes from the start is encrypted and sent as
// the parts of a multipart upload; Close sends the rest and completes it
// (a file smaller than a part is one PutObject), then writes the entry.
package objstage
