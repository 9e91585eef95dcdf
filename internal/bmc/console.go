package bmc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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
	// drop the admin out of a boot they are watching. The keys typed are
	// not lost: the escape reader outlives the sessions.
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

// solSession runs one SOL session until the input ends or the BMC stops
// answering.
func solSession(ctx context.Context, t Target, keys *keyPump, out io.Writer) error {
	return session(ctx, t, func(c *client.Client) error {
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
		return c.SOLStream(ctx, keyView{keys, stop}, out, nil)
	})
}

// keyPump reads the keyboard in one goroutine for all the sessions of a
// console, so a session that ended cannot hold on to (or swallow) a key
// meant for the next one.
type keyPump struct {
	ch   chan keyRead
	done atomic.Bool // the input ended: escape sequence or end of file
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

// keyView is one session's reader of the pump; it ends with the session.
type keyView struct {
	p    *keyPump
	stop <-chan struct{}
}

func (v keyView) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	select {
	case k := <-v.p.ch:
		if k.err != nil {
			return 0, k.err
		}
		b[0] = k.b
		return 1, nil
	case <-v.stop:
		return 0, io.EOF
	}
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
