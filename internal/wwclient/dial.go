package wwclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"syscall"
)

// Privileged source ports are below 1024; warewulfd takes a request from
// one as proof that it comes from root on the node. The client uses the
// upper half, away from the well-known services.
const (
	LowPort  = 512
	HighPort = 1023
)

// PrivilegedDialer connects from a local port in [Low, High], starting at a
// random one and moving on while a port is busy.
type PrivilegedDialer struct {
	Low, High int
	// LocalIP binds the source address too, when set.
	LocalIP net.IP
}

// DialContext connects to addr over TCP from a privileged port.
func (d *PrivilegedDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	low, high := d.Low, d.High
	if low == 0 {
		low, high = LowPort, HighPort
	}
	n := high - low + 1
	start := rand.IntN(n)
	var last error
	for i := 0; i < n; i++ {
		port := low + (start+i)%n
		dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: d.LocalIP, Port: port}}
		conn, err := dialer.DialContext(ctx, network, addr)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		// A port in use (or still in TIME_WAIT towards this server):
		// try the next one. Anything else is the server's answer.
		if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL) {
			last = err
			continue
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("binding source port %d needs root (or CAP_NET_BIND_SERVICE): %w", port, err)
		}
		return nil, err
	}
	return nil, fmt.Errorf("no free source port in %d-%d: %w", low, high, last)
}
