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

// forget drops an ended one-off from the maps.
func (p *Platform) forget(o *oneOff) {
	p.mu.Lock()
	delete(p.byToken, o.token)
	delete(p.byOp, o.opID)
	p.mu.Unlock()
}

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
