package oneoff

import (
	"net/url"
	"sync"
)

// OneOff is a started one-off container, ready to receive files and be
// attached. Its methods may be called from several goroutines.
type OneOff struct {
	c           *Client
	attach      *url.URL // explicit port, no user info; its path is a secret
	containerID string
	label       string
	pipe        bool

	mu       sync.Mutex
	attached bool
	early    [2]int // a size refused before attach, sent again right after it; zero if none
}

// ContainerID is the platform's id of the container ("" if it gave none).
func (o *OneOff) ContainerID() string { return o.containerID }

// Label is the container's label, e.g. "one-off-1" ("" if it gave none).
func (o *OneOff) Label() string { return o.label }

// PipeMode is true only if pipe mode was asked and the server echoed
// `"tty": false`: then the stream carries plain bytes and stdin EOF is a
// half-close. Otherwise the one-off runs on a terminal.
func (o *OneOff) PipeMode() bool { return o.pipe }
