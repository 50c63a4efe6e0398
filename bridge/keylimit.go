package bridge

import (
	"errors"
	"fmt"
	"sync"
)

// oneOffCounts counts the one-offs each key runs at once, across all its
// connections to this bridge, so that one key cannot take every one-off the
// platform allows an app or the bridge's token. Keys are named as the
// staging area names them (session.identity: the fingerprint of the user's
// own key). The zero value is ready to use.
type oneOffCounts struct {
	mu  sync.Mutex
	run map[string]int
}

// acquire counts a one-off for key, unless key already runs limit of them.
// release, called once the one-off ended, gives the slot back.
func (c *oneOffCounts) acquire(key string, limit int) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.run[key] >= limit {
		return nil, false
	}
	if c.run == nil {
		c.run = map[string]int{}
	}
	c.run[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.run[key]--; c.run[key] <= 0 {
				delete(c.run, key)
			}
		})
	}, true
}

// keyLimitFailure is what a session is told when its key already runs
// limit one-offs.
func keyLimitFailure(limit int) *exitFailure {
	containers := "one-off containers"
	if limit == 1 {
		containers = "one-off container"
	}
	return &exitFailure{ExitKeyLimit,
		fmt.Sprintf("This key already runs %d %s, the most the bridge allows per key; try again when one has ended.", limit, containers),
		errors.New("one-offs per key limit reached")}
}
