package fault

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// proxy forwards TCP connections from a local port to one upstream
// address. The nemesis cuts it to take a store away from one agent as a
// network partition would: the connections open at the cut are dropped, and
// connections made during the cut are accepted but never answered (a
// blackhole, so a client waits for its own timeout rather than getting a
// quick refusal). Heal ends the cut and closes the blackholed connections.
type proxy struct {
	name     string
	upstream string
	ln       net.Listener

	mu     sync.Mutex
	cut    bool
	closed bool
	live   map[net.Conn]struct{} // both ends of every forwarded connection
	held   map[net.Conn]struct{} // accepted during a cut, never answered
	wg     sync.WaitGroup
}

func newProxy(name, upstream string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", name, err)
	}
	p := &proxy{name: name, upstream: upstream, ln: ln, live: map[net.Conn]struct{}{}, held: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the address clients connect to.
func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		switch {
		case p.closed:
			_ = c.Close()
		case p.cut:
			p.held[c] = struct{}{}
		default:
			p.wg.Add(1)
			go p.forward(c)
		}
		p.mu.Unlock()
	}
}

func (p *proxy) forward(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		_ = c.Close() // the upstream is down: the client sees its connection closed
		return
	}
	p.mu.Lock()
	if p.cut || p.closed {
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.live[c], p.live[up] = struct{}{}, struct{}{}
	p.mu.Unlock()

	var once sync.Once
	done := func() {
		once.Do(func() {
			p.mu.Lock()
			delete(p.live, c)
			delete(p.live, up)
			p.mu.Unlock()
			_ = c.Close()
			_ = up.Close()
		})
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_, _ = io.Copy(up, c)
		done()
	}()
	_, _ = io.Copy(c, up)
	done()
}

// Cut drops every forwarded connection and blackholes new ones until Heal.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.live {
		_ = c.Close()
	}
}

// Heal forwards new connections again and closes the ones held during the
// cut (their clients have given up or will see the close and reconnect).
func (p *proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for c := range p.held {
		_ = c.Close()
	}
	clear(p.held)
}

// Close stops the proxy and waits for its goroutines.
func (p *proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	err := p.ln.Close()
	for c := range p.live {
		_ = c.Close()
	}
	for c := range p.held {
		_ = c.Close()
	}
	clear(p.held)
	p.mu.Unlock()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
