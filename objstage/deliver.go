package objstage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"sshbridge/uploads"
)

// DeliverFiles posts the pending files of the scope that no other bridge
// is delivering, oldest first, as uploads.Scope.Deliver does: each is
// leased first (a file another bridge leased stays pending for it, and is
// not sent here), the leases are renewed while the delivery lasts, and the
// files leave the store only at Commit. Deliveries of one scope through
// this Store run one after the other.
func (sc *scope) DeliverFiles(ctx context.Context, send uploads.SendFunc, progress uploads.ProgressFunc) (uploads.Handoff, error) {
	if progress == nil {
		progress = func(string, int64, int64, bool) {}
	}
	s := sc.s
	turn := s.turn(sc.key)
	select {
	case turn.ch <- struct{}{}:
	case <-ctx.Done():
		s.leaveTurn(sc.key, turn)
		return nil, &uploads.DeliveryError{Err: context.Cause(ctx)}
	}
	d := &delivery{sc: sc, turn: turn, start: s.now()}
	v, err := s.list(ctx, sc.key)
	if err != nil {
		d.end()
		return nil, &uploads.DeliveryError{Err: s.storeErr("list", "", err)}
	}
	todo := pendingOf(v)
	// The first file's read starts with the leases: the store answers its
	// GET while they are taken and the entries read again. It is sent only
	// once leased and still current; else it is dropped unread.
	var ahead *prefetch
	if len(todo) > 0 {
		ahead = sc.s.prefetch(ctx, sc.key, v.files[todo[0].Name])
		defer ahead.drop()
	}
	// Lease every file first, so that the renewals cover the whole
	// delivery; a file leased elsewhere is another bridge's to deliver.
	var leased []*fileEnt
	for _, e := range todo {
		f := v.files[e.Name]
		l, err := s.acquire(ctx, s.leaseKey(sc.key, f.id))
		if errors.Is(err, errLeaseHeld) {
			s.log.Info("staging store: a pending file is being delivered by another bridge", "app", sc.app, "file", f.name)
			continue
		}
		if err != nil {
			d.release()
			return nil, &uploads.DeliveryError{File: f.name, Pending: names(todo), Err: s.storeErr("lease", f.name, err)}
		}
		d.leases = append(d.leases, l)
		leased = append(leased, f)
	}
	if len(leased) == 0 {
		d.once.Do(d.end) // sent nothing: over now
		return d, nil
	}
	d.renew = s.renewEvery(d.leases)
	// The entries as they are now that the leases are ours: a file
	// removed or replaced before is not sent.
	if v, err = s.list(ctx, sc.key); err != nil {
		d.release()
		return nil, &uploads.DeliveryError{Pending: names(todo), Err: s.storeErr("list", "", err)}
	}
	for i, f := range leased {
		if err := ctx.Err(); err != nil {
			d.release()
			return nil, &uploads.DeliveryError{Pending: d.pendingNames(leased[i:]), Err: context.Cause(ctx)}
		}
		cur := v.files[f.name]
		if cur == nil || cur.id != f.id {
			continue
		}
		if err := sc.deliverOne(ctx, cur, ahead.take(cur), send, progress); err != nil {
			d.release()
			return nil, &uploads.DeliveryError{File: f.name, Pending: d.pendingNames(leased[i:]), Err: err}
		}
		d.files = append(d.files, cur)
	}
	if len(d.files) == 0 {
		d.once.Do(d.release)
	}
	return d, nil
}

func names(es []uploads.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Name
	}
	return out
}

// turn orders the deliveries of a scope in this Store: ch holds the one
// under way; users counts the deliveries holding or waiting for it, so
// that the turn of a scope no one delivers is forgotten.
type turn struct {
	ch    chan struct{}
	users int
}

func (s *Store) turn(k scopeKey) *turn {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.delivering[k]
	if t == nil {
		t = &turn{ch: make(chan struct{}, 1)}
		s.delivering[k] = t
	}
	t.users++
	return t
}

func (s *Store) leaveTurn(k scopeKey, t *turn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.users--; t.users == 0 {
		delete(s.delivering, k)
	}
}

// deliverOne streams one file from the store, decrypted, through send.
func (sc *scope) deliverOne(ctx context.Context, f *fileEnt, ahead *prefetch, send uploads.SendFunc, progress uploads.ProgressFunc) error {
	var r io.ReadCloser
	var err error
	if ahead != nil {
		r, err = ahead.r, ahead.err
	} else {
		r, err = sc.s.getPlain(ctx, sc.key, f)
	}
	if err != nil {
		return sc.s.storeErr("read", f.name, err)
	}
	defer r.Close()
	progress(f.name, 0, f.size, false)
	pr := &progressReader{r: io.LimitReader(r, f.size+1), name: f.name, total: f.size, progress: progress}
	if err := send(ctx, f.name, f.size, pr); err != nil {
		return err
	}
	if pr.done != f.size {
		return fmt.Errorf("the file was not read to its end (%d of %d bytes)", pr.done, f.size)
	}
	// The end of the stream is what proves it whole (DARE's final
	// package): read it if the platform stopped at the size.
	if n, err := io.Copy(io.Discard, r); err != nil || n != 0 {
		return fmt.Errorf("the stored file is damaged: %v", errors.Join(err, fmt.Errorf("%d bytes past its size", n)))
	}
	progress(f.name, f.size, f.size, true)
	return nil
}

// prefetch is the read of a file started before its lease is known.
type prefetch struct {
	f     *fileEnt
	done  chan struct{}
	r     io.ReadCloser
	err   error
	taken bool
}

// prefetch starts reading f (getPlain) in the background.
func (s *Store) prefetch(ctx context.Context, k scopeKey, f *fileEnt) *prefetch {
	p := &prefetch{f: f, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.r, p.err = s.getPlain(ctx, k, f)
	}()
	return p
}

// take returns p, its read done, when it is of f's blob; else nil (and
// deliverOne reads f itself). Only the first call for f returns p.
func (p *prefetch) take(f *fileEnt) *prefetch {
	if p == nil || p.taken || p.f.id != f.id {
		return nil
	}
	<-p.done
	p.taken = true
	return p
}

// drop closes the read unless it was taken.
func (p *prefetch) drop() {
	if p.taken {
		return
	}
	p.taken = true
	<-p.done
	if p.err == nil {
		p.r.Close()
	}
}

type progressReader struct {
	r        io.Reader
	name     string
	done     int64
	total    int64
	progress uploads.ProgressFunc
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		if p.done > p.total {
			return n, errors.New("the stored file is longer than its entry says")
		}
		p.progress(p.name, p.done, p.total, false)
	}
	return n, err
}

// delivery is the files sent to one one-off, leased until Commit or
// Release: uploads.Handoff.
type delivery struct {
	sc     *scope
	turn   *turn
	start  time.Time
	leases []*lease
	renew  *renewer
	files  []*fileEnt
	once   sync.Once
	ended  sync.Once
}

func (d *delivery) pendingNames(left []*fileEnt) []string {
	out := make([]string, 0, len(d.files)+len(left))
	for _, f := range d.files {
		out = append(out, f.name)
	}
	for _, f := range left {
		out = append(out, f.name)
	}
	return out
}

// Files names the files sent, oldest first.
func (d *delivery) Files() []string { return d.pendingNames(nil) }

// Commit removes the delivered files from the store (entries, then blobs,
// then leases), and directories made before the delivery that are empty
// now. On an error the files not yet removed stay pending (their leases
// expire).
func (d *delivery) Commit() error {
	var err error
	d.once.Do(func() {
		defer d.end()
		if d.renew != nil {
			d.renew.end()
		}
		s, k := d.sc.s, d.sc.key
		ctx := context.Background()
		v, lerr := s.list(ctx, k)
		if lerr != nil {
			err = fmt.Errorf("remove delivered files from staging: %w", lerr)
			return
		}
		for _, f := range d.files {
			if derr := s.dropFile(ctx, k, v, f.id); derr != nil {
				err = fmt.Errorf("remove delivered files from staging: %w", derr)
				return
			}
			delete(v.files, f.name)
			delete(v.byID, f.id)
		}
		for _, l := range d.leases {
			s.release(l)
		}
		s.pruneDirs(ctx, k, v, d.start)
	})
	return err
}

// Release ends the delivery and leaves every file pending.
func (d *delivery) Release() { d.once.Do(d.release) }

func (d *delivery) release() {
	defer d.end()
	if d.renew != nil {
		d.renew.end()
	}
	for _, l := range d.leases {
		d.sc.s.release(l)
	}
}

func (d *delivery) end() {
	d.ended.Do(func() {
		<-d.turn.ch
		d.sc.s.leaveTurn(d.sc.key, d.turn)
	})
}

// pruneDirs removes the markers of directories made at or before cutoff
// that hold nothing, deepest first.
func (s *Store) pruneDirs(ctx context.Context, k scopeKey, v *view, cutoff time.Time) int {
	all := append([]*dirEnt(nil), v.more...)
	for _, d := range v.dirs {
		all = append(all, d)
	}
	sort.Slice(all, func(i, j int) bool { return len(all[i].name) > len(all[j].name) })
	n := 0
	for _, d := range all {
		if d.created.After(cutoff) || v.hasChildren(d.name) || s.writersUnder(k, d.name) {
			continue
		}
		if err := s.deleteKey(ctx, d.key); err != nil {
			s.log.Warn("staging store: remove an empty directory", "err", oneLine(err))
			continue
		}
		if v.dirs[d.name] == d {
			delete(v.dirs, d.name)
		}
		n++
	}
	return n
}

func (s *Store) writersUnder(k scopeKey, dir string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.writers[k] {
		if !w.unlinked && (w.path == dir || len(w.path) > len(dir) && w.path[:len(dir)+1] == dir+"/") {
			return true
		}
	}
	return false
}
