package bmc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/transport"
	"github.com/bougou/go-ipmi/pkg/types"
)

// EscapeChar is the node's console escape character: `ipmi escapechar`,
// or ipmitool's ~.
func (t Target) Escape() (byte, error) {
	switch len(t.Ipmi.EscapeChar) {
	case 0:
		return '~', nil
	case 1:
		return t.Ipmi.EscapeChar[0], nil
	}
	return 0, fmt.Errorf("ipmi escapechar %q is not one character", t.Ipmi.EscapeChar)
}

// Console connects in and out to the node's serial console over LAN (SOL)
// until in ends or the escape sequence comes: the escape character then a
// dot, at the start of a line, as in ipmitool. The escape character twice
// sends it once. A site template's Console command runs on the caller's
// terminal instead, as upstream runs it.
func Console(ctx context.Context, t Target, in io.Reader, out io.Writer) error {
	esc, err := t.Escape()
	if err != nil {
		return err
	}
	switch {
	case t.TemplateFile != "":
		line, err := Command(t, "Console")
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", line)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = in, out, os.Stderr
		return cmd.Run()
	case t.Interface == Redfish:
		return errors.New("the console is not available over redfish; use lanplus")
	case t.Interface == "lan":
		return errors.New("the console (serial over LAN) needs ipmi interface lanplus, not lan")
	}
	keys := newKeyPump(&escapeReader{r: bufio.NewReader(in), esc: esc, lineStart: true})
	fmt.Fprintf(out, "[console of %s; %c. to quit]\r\n", t.Node, esc)
	defer fmt.Fprintf(out, "\r\n[console of %s closed]\r\n", t.Node)
	// A BMC that stops answering for a few seconds (a busy BMC, a lost
	// packet burst) ends a SOL session; the console reconnects rather than
	// drop the admin out of a boot they are watching. The keys typed
	// meanwhile go to the next session: the key pump outlives the
	// sessions, and a session takes a key only while its BMC answers (see
	// keyView). A key already on its way when the BMC fell silent may be
	// lost, as with ipmitool.
	for failures := 0; ; {
		err := solSession(ctx, t, keys, out)
		if err == nil || keys.done.Load() || ctx.Err() != nil {
			return err
		}
		if failures++; failures > 3 {
			return err
		}
		fmt.Fprintf(out, "\r\n[console of %s: %s; reconnecting]\r\n", t.Node, OneLine(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// solKeepalive is how often a console sends its BMC an IPMI command (Get
// Device ID) while serial over LAN flows. A BMC may count only IPMI
// messages as session activity, not SOL packets: OpenIPMI's ipmi_sim closes
// a session 30 s after its last IPMI message and from then on drops every
// packet of it unanswered, SOL included. (go-ipmi's own keepalive, every
// 30 s from the login, comes too late for that.) ipmitool keeps its SOL
// sessions alive the same way, every 15 s.
var solKeepalive = 10 * time.Second

// solSession runs one SOL session until the input ends or the BMC stops
// answering.
func solSession(ctx context.Context, t Target, keys *keyPump, out io.Writer) error {
	link := newRxLink()
	return sessionVia(ctx, t, link, func(c *client.Client) error {
		activate := &transport.ActivatePayloadRequest{PayloadType: types.PayloadTypeSOL, PayloadInstance: 1}
		if _, err := c.ActivatePayload(ctx, activate); err != nil {
			// A session left over (a console closed without deactivating)
			// holds the payload: take it over, as `ipmitool sol deactivate`
			// would.
			_, _ = c.DeactivatePayload(ctx, &transport.DeactivatePayloadRequest{PayloadType: types.PayloadTypeSOL, PayloadInstance: 1})
			if _, err2 := c.ActivatePayload(ctx, activate); err2 != nil {
				return fmt.Errorf("activate serial over LAN: %w", err)
			}
		}
		defer c.DeactivatePayload(context.WithoutCancel(ctx), &transport.DeactivatePayloadRequest{PayloadType: types.PayloadTypeSOL, PayloadInstance: 1})
		stop := make(chan struct{})
		defer close(stop)
		kctx, cancel := context.WithCancel(ctx)
		alive := make(chan struct{})
		go func() {
			defer close(alive)
			keepAlive(kctx, c)
		}()
		defer func() {
			cancel()
			<-alive
		}()
		return c.SOLStream(ctx, &keyView{p: keys, stop: stop, link: link}, out, nil)
	})
}

// keepAlive sends Get Device ID every solKeepalive until ctx ends. A BMC
// that does not answer is the SOL stream's to notice.
func keepAlive(ctx context.Context, c *client.Client) {
	tick := time.NewTicker(solKeepalive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_, _ = c.GetDeviceID(ctx)
		}
	}
}

// keyFresh is how recently the BMC must have answered for a session to
// take a key: its SOL stream polls every 100 ms, so a BMC that said
// nothing for longer may be gone.
var keyFresh = 300 * time.Millisecond

// rxLink makes a session's UDP socket and notes every datagram that comes
// back on it: the console's sign that the BMC still answers.
type rxLink struct {
	n     atomic.Int64 // datagrams received
	last  atomic.Int64 // when the last came, UnixNano
	pulse chan struct{}
	fresh time.Duration // keyFresh
}

func newRxLink() *rxLink {
	l := &rxLink{pulse: make(chan struct{}, 1), fresh: keyFresh}
	l.last.Store(time.Now().UnixNano())
	return l
}

// Dial is go-ipmi's proxy.Dialer.
func (l *rxLink) Dial(network, addr string) (net.Conn, error) {
	c, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	return rxConn{Conn: c, l: l}, nil
}

func (l *rxLink) seen() {
	l.last.Store(time.Now().UnixNano())
	l.n.Add(1)
	select {
	case l.pulse <- struct{}{}:
	default:
	}
}

type rxConn struct {
	net.Conn
	l *rxLink
}

func (c rxConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err == nil {
		c.l.seen()
	}
	return n, err
}

// keyPump reads the keyboard in one goroutine for all the sessions of a
// console, so a session that ended cannot hold on to (or swallow) a key
// meant for the next one.
type keyPump struct {
	ch   chan keyRead
	done atomic.Bool // the input ended: escape sequence or end of file

	mu   sync.Mutex
	held []keyRead // keys a session took and gave back, first out first
}

type keyRead struct {
	b   byte
	err error
}

func newKeyPump(r io.Reader) *keyPump {
	p := &keyPump{ch: make(chan keyRead)}
	go func() {
		buf := make([]byte, 1)
		for {
			_, err := io.ReadFull(r, buf)
			if err != nil {
				p.done.Store(true)
				p.ch <- keyRead{err: err}
				return
			}
			p.ch <- keyRead{b: buf[0]}
		}
	}()
	return p
}

// next is the next key: one given back first, else the keyboard's, until
// stop closes.
func (p *keyPump) next(stop <-chan struct{}) (keyRead, bool) {
	p.mu.Lock()
	if len(p.held) > 0 {
		k := p.held[0]
		p.held = p.held[1:]
		p.mu.Unlock()
		return k, true
	}
	p.mu.Unlock()
	select {
	case k := <-p.ch:
		return k, true
	case <-stop:
		return keyRead{}, false
	}
}

// giveBack returns a key that next handed out, to be the next again.
func (p *keyPump) giveBack(k keyRead) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = append([]keyRead{k}, p.held...)
}

// keyView is one session's reader of the pump; it ends with the session.
// go-ipmi reads its input ahead, into a queue the session drops when it
// ends, so with a link the view takes a key from the pump only while the
// BMC answers: when it has answered within keyFresh, and since the view
// took its last key. A BMC that fell silent leaves the keys typed in the
// pump, for the next session.
type keyView struct {
	p    *keyPump
	stop <-chan struct{}
	link *rxLink // nil: no such check

	took bool  // a key was taken
	at   int64 // the link's count of datagrams when it was
}

func (v *keyView) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		for v.link != nil && !v.ready() {
			select {
			case <-v.link.pulse:
			case <-v.stop:
				return 0, io.EOF
			}
		}
		k, ok := v.p.next(v.stop)
		if !ok {
			return 0, io.EOF
		}
		select {
		case <-v.stop:
			// The session ended while the key came: the next one's.
			v.p.giveBack(k)
			return 0, io.EOF
		default:
		}
		if k.err != nil {
			return 0, k.err
		}
		if v.link != nil && !v.ready() {
			// The BMC fell silent while the view waited for a key.
			v.p.giveBack(k)
			continue
		}
		b[0] = k.b
		if v.link != nil {
			v.took, v.at = true, v.link.n.Load()
		}
		return 1, nil
	}
}

// ready: the BMC answered within keyFresh, and since the last key was
// taken.
func (v *keyView) ready() bool {
	if v.took && v.link.n.Load() <= v.at {
		return false
	}
	return time.Since(time.Unix(0, v.link.last.Load())) < v.link.fresh
}

// escapeReader passes keystrokes through until the escape sequence, where it
// reports the end of input.
type escapeReader struct {
	r         *bufio.Reader
	esc       byte
	lineStart bool
	pending   bool // the escape character came at a line start
	done      bool // the escape sequence came
}

func (e *escapeReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if e.done {
			return 0, io.EOF
		}
		b, err := e.r.ReadByte()
		if err != nil {
			return 0, err
		}
		if e.pending {
			e.pending = false
			switch b {
			case '.':
				e.done = true
				return 0, io.EOF
			case e.esc:
				e.lineStart = false
				p[0] = b
				return 1, nil
			}
			// Not a command: the escape character goes through, then b.
			_ = e.r.UnreadByte()
			e.lineStart = false
			p[0] = e.esc
			return 1, nil
		}
		if e.lineStart && b == e.esc {
			e.pending = true
			continue
		}
		e.lineStart = b == '\r' || b == '\n'
		p[0] = b
		return 1, nil
	}
}
