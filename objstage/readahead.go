package objstage

import (
	"io"
	"sync"
)

// readahead reads r ahead of its consumer in a goroutine of its own, so
// that the network's reads and the decryption overlap: up to depth
// buffers of size bytes wait to be consumed.
type readahead struct {
	r     io.ReadCloser
	ch    chan []byte
	free  chan []byte
	cur   []byte // what is left of buf to consume
	buf   []byte // the buffer being consumed, whole
	err   error
	errMu sync.Mutex
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newReadahead(r io.ReadCloser, size, depth int) *readahead {
	ra := &readahead{r: r, ch: make(chan []byte, depth), free: make(chan []byte, depth+1),
		stop: make(chan struct{}), done: make(chan struct{})}
	for i := 0; i < depth+1; i++ {
		ra.free <- make([]byte, size)
	}
	go ra.fill()
	return ra
}

func (ra *readahead) fill() {
	defer close(ra.done)
	defer close(ra.ch)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.stop:
			return
		}
		n, err := io.ReadFull(ra.r, buf[:cap(buf)])
		if n > 0 {
			select {
			case ra.ch <- buf[:n]:
			case <-ra.stop:
				return
			}
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			ra.errMu.Lock()
			ra.err = err
			ra.errMu.Unlock()
			return
		}
	}
}

func (ra *readahead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.buf != nil {
			ra.free <- ra.buf[:cap(ra.buf)]
			ra.buf = nil
		}
		buf, ok := <-ra.ch
		if !ok {
			ra.errMu.Lock()
			defer ra.errMu.Unlock()
			return 0, ra.err
		}
		ra.buf, ra.cur = buf, buf
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the reading and closes r.
func (ra *readahead) Close() error {
	var err error
	ra.once.Do(func() {
		close(ra.stop)
		err = ra.r.Close() // ends a read under way
		<-ra.done
	})
	return err
}
