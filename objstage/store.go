package objstage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"sshbridge/uploads"
)

// Defaults of Config's zero values.
const (
	// DefaultSpoolSize bounds the local spool of uploads in flight.
	DefaultSpoolSize int64 = 4 << 30
	// DefaultLease is how long a delivery's lease lasts past its last
	// renewal.
	DefaultLease = time.Minute
	// partSize is the bytes of one part of a multipart upload, the
	// ciphertext cut at this size whatever DARE's package boundaries (S3
	// wants at least 5 MiB but for the last).
	partSize = 8 << 20
)

// Config says where the staging area lives and how it is bounded.
type Config struct {
	// URL is s3://BUCKET/PREFIX (PREFIX may be empty).
	URL string
	// Key is the operator's 256-bit key (ReadKeyFile).
	Key []byte
	// SpoolDir holds the spool files of uploads in flight; they are
	// unlinked as soon as made.
	SpoolDir string
	// SpoolSize bounds the spool, in bytes; 0 means DefaultSpoolSize.
	SpoolSize int64
	// Lease is a delivery lease's life; 0 means DefaultLease.
	Lease time.Duration
	// Limits are the staging area's, as for the local one.
	Limits uploads.Limits
	// Client is the S3 client; nil means one made by NewClient.
	Client *s3.Client
}

// ParseURL splits s3://BUCKET/PREFIX; the prefix is returned with a
// trailing slash, or empty.
func ParseURL(raw string) (bucket, prefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", "", fmt.Errorf("staging URL %q: want s3://BUCKET or s3://BUCKET/PREFIX", raw)
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	return u.Host, prefix, nil
}

// NewClient makes an S3 client as AWS tools do (config.LoadDefaultConfig:
// environment, shared config and credentials files, AWS_ENDPOINT_URL_S3 or
// AWS_ENDPOINT_URL), with path-style addressing when an endpoint is set
// explicitly (S3-compatible stores), checksums only when an operation
// requires them, and us-east-1 when no region is set.
func NewClient(ctx context.Context) (*s3.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	if err != nil {
		return nil, fmt.Errorf("S3 configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if o.BaseEndpoint != nil && *o.BaseEndpoint != "" {
			o.UsePathStyle = true
		}
	}), nil
}

// Store is the staging area on an object store: an uploads.Backend. It is
// safe for concurrent use, and any number of Stores, in one process or
// many, may share a bucket and prefix.
type Store struct {
	c      *s3.Client
	bucket string
	prefix string
	key    []byte
	lim    uploads.Limits
	lease  time.Duration
	log    *slog.Logger
	now    func() time.Time
	holder string // names this Store in its leases

	spoolDir  string
	spoolSize int64
	spoolUsed atomic.Int64

	// mu guards writers and delivering.
	mu         sync.Mutex
	writers    map[scopeKey]map[*writer]struct{}
	delivering map[scopeKey]*turn

	pendingFiles atomic.Int64 // as of the last sweep
	pendingBytes atomic.Int64

	ctx       context.Context // ended by Close
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once

	observer atomic.Pointer[func(uploads.Event)]
}

var _ uploads.Backend = (*Store)(nil)

// storeTimeout bounds one request that moves no file's bytes (a listing,
// an entry, a lease).
const storeTimeout = 30 * time.Second

// Open opens the staging area of cfg: the bucket must exist and be
// reachable with the credentials (one HeadBucket), else the error says so
// in one line. It starts the expiry sweep; Close stops it.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bucket, prefix, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if len(cfg.Key) != KeySize {
		return nil, errors.New("staging key: want 256 bits")
	}
	if cfg.SpoolDir == "" {
		return nil, errors.New("open staging store: no spool directory")
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("staging spool: %w", err)
	}
	c := cfg.Client
	if c == nil {
		if c, err = NewClient(ctx); err != nil {
			return nil, err
		}
	}
	holder, err := newID()
	if err != nil {
		return nil, err
	}
	s := &Store{
		c: c, bucket: bucket, prefix: prefix, key: cfg.Key,
		lim: withDefaults(cfg.Limits), lease: cfg.Lease, log: log, now: time.Now, holder: holder,
		spoolDir: cfg.SpoolDir, spoolSize: cfg.SpoolSize,
		writers:    make(map[scopeKey]map[*writer]struct{}),
		delivering: make(map[scopeKey]*turn),
		done:       make(chan struct{}),
	}
	if s.lease <= 0 {
		s.lease = DefaultLease
	}
	if s.spoolSize <= 0 {
		s.spoolSize = DefaultSpoolSize
	}
	if err := s.checkBucket(ctx); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.sweeper()
	return s, nil
}

// checkBucket is one HeadBucket, its failure said in one line.
func (s *Store) checkBucket(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if err == nil {
		return nil
	}
	switch code := httpStatus(err); {
	case code == http.StatusNotFound:
		return fmt.Errorf("staging store: bucket %q does not exist (the bridge does not create it)", s.bucket)
	case code == http.StatusForbidden || code == http.StatusUnauthorized:
		return fmt.Errorf("staging store: bucket %q: access denied (check the credentials)", s.bucket)
	}
	return fmt.Errorf("staging store: bucket %q: %s", s.bucket, oneLine(err))
}

func withDefaults(l uploads.Limits) uploads.Limits {
	if l.MaxFileSize == 0 {
		l.MaxFileSize = uploads.DefaultMaxFileSize
	}
	if l.UserQuota == 0 {
		l.UserQuota = uploads.DefaultUserQuota
	}
	if l.Expiry == 0 {
		l.Expiry = uploads.DefaultExpiry
	}
	return l
}

// Close stops the expiry sweep. Writers still open are abandoned (their
// multipart uploads aborted); pending files stay in the store.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
	})
	return nil
}

// Limits returns the limits in force, defaults applied.
func (s *Store) Limits() uploads.Limits { return s.lim }

// Observe has fn called at each uploads.Event, as uploads.Store.Observe.
// An "expired" event of the sweeper names no user or app: the store knows
// only their hashes.
func (s *Store) Observe(fn func(uploads.Event)) {
	if fn == nil {
		s.observer.Store(nil)
		return
	}
	s.observer.Store(&fn)
}

func (s *Store) emit(e uploads.Event) {
	if fn := s.observer.Load(); fn != nil {
		(*fn)(e)
	}
}

// Pending counts the files pending in the whole store and their bytes as
// of the last sweep (at most the sweep interval old).
func (s *Store) Pending() (files int, bytes int64) {
	return int(s.pendingFiles.Load()), s.pendingBytes.Load()
}

// CheckWritable is nil when the spool directory takes a file and the
// store answers (HeadBucket): readiness.
func (s *Store) CheckWritable() error {
	f, err := os.CreateTemp(s.spoolDir, "ready-")
	if err != nil {
		return fmt.Errorf("staging spool not writable: %w", err)
	}
	f.Close()
	os.Remove(f.Name())
	return s.checkBucket(context.Background())
}

// Files returns the view of one (user, app).
func (s *Store) Files(user, app string) uploads.Files {
	return &scope{s: s, key: scopeKey{user: hashName(user), app: hashName(app)}, user: user, app: app}
}

// httpStatus is the HTTP status of a store's answer, 0 when there was none.
func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func preconditionFailed(err error) bool {
	if httpStatus(err) == http.StatusPreconditionFailed {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict")
}

func notFound(err error) bool {
	if httpStatus(err) == http.StatusNotFound {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound")
}

// oneLine shortens a store error for a log line.
func oneLine(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if code := httpStatus(err); code != 0 {
			return fmt.Sprintf("%s (HTTP %d): %s", ae.ErrorCode(), code, ae.ErrorMessage())
		}
		return ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	return err.Error()
}

// storeErr logs a store failure and returns what the user sees: name and
// uploads.ErrStoreUnavailable.
func (s *Store) storeErr(op, name string, err error) error {
	if errors.Is(err, uploads.ErrStoreUnavailable) {
		return err
	}
	s.log.Error("staging store: "+op+" failed", "err", oneLine(err))
	if name == "" {
		return fmt.Errorf("/tmp/uploads: %w", uploads.ErrStoreUnavailable)
	}
	return fmt.Errorf("%q: %w", name, uploads.ErrStoreUnavailable)
}

// notStaged is storeErr for an upload the store failed: the file is not
// pending.
func (s *Store) notStaged(op, name string, err error) error {
	if errors.Is(err, uploads.ErrStoreUnavailable) {
		return err
	}
	s.log.Error("staging store: "+op+" failed", "err", oneLine(err))
	return fmt.Errorf("%q: not staged: %w", name, uploads.ErrStoreUnavailable)
}

// listAll lists every key under prefix, calling fn for each.
func (s *Store) listAll(ctx context.Context, prefix string, fn func(key string, size int64, mtime time.Time)) error {
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			var mt time.Time
			if o.LastModified != nil {
				mt = *o.LastModified
			}
			fn(aws.ToString(o.Key), aws.ToInt64(o.Size), mt)
		}
	}
	return nil
}

// view is a scope's tree as one listing shows it, expired files left out.
type view struct {
	files map[string]*fileEnt   // the newest entry of each name
	byID  map[string][]*fileEnt // every entry of each file ID
	stale []*fileEnt            // older entries, shadowed
	dirs  map[string]*dirEnt    // the newest marker of each directory
	more  []*dirEnt             // older markers
}

func (s *Store) cutoff() time.Time {
	if s.lim.Expiry < 0 {
		return time.Time{}
	}
	return s.now().Add(-s.lim.Expiry)
}

// list reads a scope's tree from the store.
func (s *Store) list(ctx context.Context, k scopeKey) (*view, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	v := &view{files: map[string]*fileEnt{}, byID: map[string][]*fileEnt{}, dirs: map[string]*dirEnt{}}
	cut := s.cutoff()
	pre := s.scopePrefix(k)
	err := s.listAll(ctx, pre, func(key string, _ int64, _ time.Time) {
		f, d, ok := parseKey(key, strings.TrimPrefix(key, pre))
		switch {
		case !ok:
		case f != nil:
			if f.created.Before(cut) {
				return // expired: gone, whenever the sweeper removes it
			}
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
			if old := v.dirs[d.name]; old == nil || d.created.After(old.created) {
				if old != nil {
					v.more = append(v.more, old)
				}
				v.dirs[d.name] = d
			} else {
				v.more = append(v.more, d)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

func newer(a, b *fileEnt) bool {
	if !a.created.Equal(b.created) {
		return a.created.After(b.created)
	}
	return a.key > b.key
}

// isDir reports whether name is a directory: the root, one made by mkdir,
// or the parent of a pending file.
func (v *view) isDir(name string) bool {
	if name == "" || v.dirs[name] != nil {
		return true
	}
	for p := range v.files {
		if strings.HasPrefix(p, name+"/") {
			return true
		}
	}
	return false
}

// usage sums the pending bytes of one user over all apps.
func (s *Store) usage(ctx context.Context, user string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	cut := s.cutoff()
	pre := s.userPrefix(user)
	newest := map[string]*fileEnt{} // app/name => entry
	err := s.listAll(ctx, pre, func(key string, _ int64, _ time.Time) {
		app, rest, ok := strings.Cut(strings.TrimPrefix(key, pre), "/")
		if !ok {
			return
		}
		f, _, ok := parseKey(key, rest)
		if !ok || f == nil || f.created.Before(cut) {
			return
		}
		k := app + "/" + f.name
		if old := newest[k]; old == nil || newer(f, old) {
			newest[k] = f
		}
	})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, f := range newest {
		n += f.size
	}
	return n, nil
}

// deleteKey deletes one object; a missing one is not an error.
func (s *Store) deleteKey(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	_, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil && !notFound(err) {
		return err
	}
	return nil
}

// exists reports whether an object is there (HeadObject).
func (s *Store) exists(ctx context.Context, key string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	_, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if notFound(err) {
		return false, nil
	}
	return err == nil, err
}

// putEmpty writes an empty object (an entry or a directory).
func (s *Store) putEmpty(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	_, err := s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, Body: strings.NewReader(""),
		ContentLength: aws.Int64(0)})
	return err
}

// CheckBucket is what Open checks of cfg, starting nothing: the URL, and
// that the bucket exists and answers the credentials (one HeadBucket). For
// `bridge check`.
func CheckBucket(ctx context.Context, rawURL string, c *s3.Client) error {
	bucket, _, err := ParseURL(rawURL)
	if err != nil {
		return err
	}
	if c == nil {
		if c, err = NewClient(ctx); err != nil {
			return err
		}
	}
	return (&Store{c: c, bucket: bucket}).checkBucket(ctx)
}
