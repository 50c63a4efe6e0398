// Package uploads is the staging area between SSH file transfers and the
// one-off containers that receive them.
//
// SSH users upload first and run later, often in another connection, while
// the platform takes files only after a one-off is ready and before anyone
// attaches. A Store keeps, on the bridge's disk, the files pending for each
// (user, app) scope as a small virtual tree; the next shell or exec session
// of that scope delivers them (Scope.Deliver) and removes them only once the
// one-off they were sent to has attached (Delivery.Commit): a one-off that
// never attached never ran the command, and what it took is lost with it.
//
// A file becomes pending only when its writer is closed after a clean
// transfer: a refused or broken transfer leaves nothing pending. Writes go
// straight to a staging file at their offsets (SFTP writes arrive
// concurrently and out of order), so no file is ever held in memory.
//
// On disk, under the Store's directory:
//
//	lock                          held (flock) by the one process using the directory
//	staging/                      files being written; emptied at Open
//	scopes/<user>/<app>/manifest.json  the scope's tree, replaced atomically
//	scopes/<user>/<app>/blobs/<id>     one file per pending file
//
//	scopes/<user>/<app>/journal.jsonl  changes since the manifest, appended
//
// <user> and <app> are hashes, so any identity string is safe; the tree's
// names live only in the manifest, so no user-chosen name is ever a path on
// the bridge's disk.
//
// The state lives in the memory of the one process holding the lock:
// several bridges cannot share one staging directory. A bridge handing
// over to a new process of itself (SIGHUP) passes the directory on whole:
// it closes its Store once its own sessions are done with it, and the new
// process's Open, which waits for that (ErrInUse until then), loads what
// the old one left. Behind a load
// balancer, give each bridge its own directory and route a user's
// connections to one bridge (source-address affinity), or have the bridges
// share an object store (package objstage): both are a Backend, whose
// Files the SSH side uses.
package uploads
