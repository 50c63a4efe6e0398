package objstage

import (
	"context"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"sshbridge/uploads"
)

// orphanAge is how old a blob with no entry, or a multipart upload, must
// be before the sweeper removes it: far longer than any upload's Close
// takes between the blob and its entry.
const orphanAge = time.Hour

// sweepInterval is the local staging area's: a tenth of the expiry,
// between 1 s and 5 min.
func (s *Store) sweepInterval() time.Duration {
	if s.lim.Expiry < 0 {
		return 5 * time.Minute
	}
	return min(max(s.lim.Expiry/10, time.Second), 5*time.Minute)
}

func (s *Store) sweeper() {
	defer close(s.done)
	s.sweep(s.ctx)
	t := time.NewTicker(s.sweepInterval())
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.sweep(s.ctx)
		}
	}
}

// sweep removes, across the whole store, the expired files and
// directories, the versions shadowed by a newer upload, the blobs no entry
// names and the leases no blob has. Every removal of a file is made under
// its lease, so that sweepers of several bridges, and deliveries, never
// act on one file at once. It also counts the pending files for Pending.
func (s *Store) sweep(ctx context.Context) {
	views := map[scopeKey]*view{}
	var expired []*fileEnt
	var expiredScope []scopeKey
	var oldDirs []*dirEnt
	var oldDirScope []scopeKey
	cut := s.cutoff()
	pre := s.prefix + "s/"
	lctx, cancel := context.WithTimeout(ctx, 5*storeTimeout)
	err := s.listAll(lctx, pre, func(key string, _ int64, _ time.Time) {
		parts := strings.SplitN(strings.TrimPrefix(key, pre), "/", 3)
		if len(parts) != 3 {
			return
		}
		k := scopeKey{user: parts[0], app: parts[1]}
		f, d, ok := parseKey(key, parts[2])
		if !ok {
			return
		}
		v := views[k]
		if v == nil {
			v = &view{files: map[string]*fileEnt{}, byID: map[string][]*fileEnt{}, dirs: map[string]*dirEnt{}}
			views[k] = v
		}
		switch {
		case f != nil && f.created.Before(cut):
			expired = append(expired, f)
			expiredScope = append(expiredScope, k)
			v.byID[f.id] = append(v.byID[f.id], f)
		case f != nil:
			v.byID[f.id] = append(v.byID[f.id], f)
			if old := v.files[f.name]; old == nil || newer(f, old) {
				if old != nil {
					v.stale = append(v.stale, old)
				}
				v.files[f.name] = f
			} else {
				v.stale = append(v.stale, f)
			}
		case d != nil:
			if !cut.IsZero() && d.created.Before(cut) {
				oldDirs = append(oldDirs, d)
				oldDirScope = append(oldDirScope, k)
			}
			if old := v.dirs[d.name]; old == nil || d.created.After(old.created) {
				v.dirs[d.name] = d
			}
		}
	})
	cancel()
	if err != nil {
		s.log.Warn("staging store: sweep: list", "err", oneLine(err))
		return
	}
	files, bytes := 0, int64(0)
	for _, v := range views {
		for _, f := range v.files {
			files++
			bytes += f.size
		}
	}
	s.pendingFiles.Store(int64(files))
	s.pendingBytes.Store(bytes)

	for i, f := range expired {
		k := expiredScope[i]
		v := views[k]
		if v.files[f.name] != nil && v.files[f.name].id == f.id {
			continue // a newer entry of the same file (a rename) is not expired
		}
		l, err := s.acquire(ctx, s.leaseKey(k, f.id))
		if err != nil {
			continue // being delivered, or another sweeper has it
		}
		if err := s.dropFile(ctx, k, v, f.id); err != nil {
			s.log.Warn("staging store: sweep: remove an expired file", "err", oneLine(err))
		} else {
			s.emit(uploads.Event{Kind: "expired", Name: f.name, Size: f.size})
			s.log.Info("staging store: expired a pending file", "user_dir", k.user, "app_dir", k.app)
		}
		s.release(l)
	}
	for k, v := range views {
		for _, o := range v.stale {
			if cur := v.files[o.name]; cur != nil && cur.id == o.id {
				continue
			}
			s.dropIfFree(k, v, o.id)
		}
	}
	for i, d := range oldDirs {
		k := oldDirScope[i]
		if v := views[k]; v.hasChildren(d.name) || s.writersUnder(k, d.name) {
			continue
		}
		if err := s.deleteKey(ctx, d.key); err != nil {
			s.log.Warn("staging store: sweep: remove an expired directory", "err", oneLine(err))
		}
	}
	s.sweepOrphans(ctx, views)
}

// sweepOrphans removes blobs no entry names, leases no blob has, both
// once older than orphanAge (or expired, for leases), and multipart
// uploads older than orphanAge.
func (s *Store) sweepOrphans(ctx context.Context, views map[scopeKey]*view) {
	named := func(k scopeKey, id string) bool {
		v := views[k]
		return v != nil && len(v.byID[id]) > 0
	}
	old := s.now().Add(-orphanAge)
	blobs := map[string]bool{}
	for _, kind := range []string{"b/", "l/"} {
		pre := s.prefix + kind
		var gone []string
		lctx, cancel := context.WithTimeout(ctx, 5*storeTimeout)
		err := s.listAll(lctx, pre, func(key string, _ int64, mtime time.Time) {
			parts := strings.Split(strings.TrimPrefix(key, pre), "/")
			if len(parts) != 3 {
				return
			}
			k, id := scopeKey{user: parts[0], app: parts[1]}, parts[2]
			if kind == "b/" {
				blobs[key] = true
			}
			if named(k, id) || !mtime.Before(old) {
				return
			}
			if kind == "l/" && blobs[s.blobKey(k, id)] {
				return
			}
			gone = append(gone, key)
		})
		cancel()
		if err != nil {
			s.log.Warn("staging store: sweep: list", "err", oneLine(err))
			return
		}
		for _, key := range gone {
			if err := s.deleteKey(ctx, key); err != nil {
				s.log.Warn("staging store: sweep: remove an orphan", "err", oneLine(err))
			}
		}
	}
	lctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	out, err := s.c.ListMultipartUploads(lctx, &s3.ListMultipartUploadsInput{Bucket: &s.bucket, Prefix: aws.String(s.prefix + "b/")})
	if err != nil {
		return // not every store lists them: a lifecycle rule does it there
	}
	for _, u := range out.Uploads {
		if u.Initiated != nil && u.Initiated.Before(old) {
			_, _ = s.c.AbortMultipartUpload(lctx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: u.Key, UploadId: u.UploadId})
		}
	}
}
