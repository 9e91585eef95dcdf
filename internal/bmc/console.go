package bmc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

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
		fmt.Fprintf(out, "[console of %s; %c. to quit]\r\n", t.Node, esc)
		err := c.SOLStream(ctx, &escapeReader{r: bufio.NewReader(in), esc: esc, lineStart: true}, out, nil)
		fmt.Fprintf(out, "\r\n[console of %s closed]\r\n", t.Node)
		return err
	})
}

// escapeReader passes keystrokes through until the escape sequence, where it
// reports the end of input.
type escapeReader struct {
	r         *bufio.Reader
	esc       byte
	lineStart bool
	pending   bool // the escape character came at a line start
}

func (e *escapeReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		b, err := e.r.ReadByte()
		if err != nil {
			return 0, err
		}
		if e.pending {
			e.pending = false
			switch b {
			case '.':
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
