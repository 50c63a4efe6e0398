package platform

import (
	"errors"
	"fmt"
)

var (
	errAppQuota   = errors.New("app quota")
	errTotalQuota = errors.New("total quota")
	errClosed     = errors.New("platform is shutting down")
)

// admit registers o if the quotas allow one more one-off alive.
func (p *Platform) admit(o *oneOff) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return errClosed
	case p.alive[o.app] >= p.cfg.AppQuota:
		return fmt.Errorf("%w: %d one-offs at most per app", errAppQuota, p.cfg.AppQuota)
	case p.total >= p.cfg.TotalQuota:
		return fmt.Errorf("%w: %d one-offs at most in all", errTotalQuota, p.cfg.TotalQuota)
	}
	p.alive[o.app]++
	p.total++
	p.indexes[o.app]++
	o.index = p.indexes[o.app]
	p.byToken[o.token] = o
	p.byOp[o.opID] = o
	p.mapsPeak = max(p.mapsPeak, len(p.byToken))
	p.sessions.Add(1) // done by released
	return nil
}

// released frees o's place in the quotas once its tree is gone.
func (p *Platform) released(o *oneOff) {
	p.mu.Lock()
	p.alive[o.app]--
	if p.alive[o.app] == 0 {
		delete(p.alive, o.app)
	}
	p.total--
	p.mu.Unlock()
	p.sessions.Done()
}

// forget drops an ended one-off from the maps. A Go map keeps the room
// of its largest size: once they hold an eighth of their peak or less,
// the maps are made anew with what they hold, so that a burst of
// one-offs (thousands retained for retainEnded at a high start rate)
// does not hold its memory for the platform's life. The copy costs one
// step per entry, paid once per eight forgotten.
func (p *Platform) forget(o *oneOff) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.byToken, o.token)
	delete(p.byOp, o.opID)
	if n := len(p.byToken); p.mapsPeak > minMapsPeak && n <= p.mapsPeak/8 {
		byToken, byOp := make(map[string]*oneOff, n), make(map[string]*oneOff, n)
		for k, v := range p.byToken {
			byToken[k] = v
		}
		for k, v := range p.byOp {
			byOp[k] = v
		}
		p.byToken, p.byOp, p.mapsPeak = byToken, byOp, n
	}
}

// minMapsPeak is the peak below which forget leaves the maps as they are:
// their room is small.
const minMapsPeak = 256

func (p *Platform) byAttachToken(token string) *oneOff {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byToken[token]
}

func (p *Platform) byOperation(id string) *oneOff {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byOp[id]
}
