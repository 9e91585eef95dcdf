package warewulfd

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A big transfer to a fast client wakes its sender through the Go
// netpoller each time the kernel's autotuned send buffer (at most
// tcp_wmem's 4 MiB) has room again. A larger buffer lets each sendfile
// call run longer: on loopback the download then costs about a sixth less
// CPU per GB. It is lent to a few transfers at a time only: past that the
// link, not the sender, is the limit, and thousands of 16 MiB queues would
// press on the kernel's TCP memory for every socket on the host.
const (
	bigSendBuffer  = 8 << 20  // asked for; the kernel doubles it
	bigTransfer    = 16 << 20 // smaller responses gain nothing from it
	bigSendBuffers = 4        // transfers that may hold one at a time
)

// wmemMax is net.core.wmem_max, the most SO_SNDBUF gives without privilege.
var wmemMax = sync.OnceValue(func() int {
	b, _ := os.ReadFile("/proc/sys/net/core/wmem_max")
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
})

type connKey struct{}

// withConn is the http.Server's ConnContext: handlers find their
// connection in the request context.
func withConn(ctx context.Context, c net.Conn) context.Context {
	if lc, ok := c.(*limitedConn); ok {
		c = lc.TCPConn
	}
	return context.WithValue(ctx, connKey{}, c)
}

// sendBuffers lends big send buffers.
type sendBuffers struct{ lent atomic.Int32 }

// lend gives the request's connection a big send buffer if one is free and
// returns the function that gives it back (the socket's old size is
// restored, for the keep-alive requests that follow).
func (b *sendBuffers) lend(ctx context.Context) (giveBack func()) {
	none := func() {}
	tc, ok := ctx.Value(connKey{}).(*net.TCPConn)
	if !ok {
		return none
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return none
	}
	if b.lent.Add(1) > bigSendBuffers {
		b.lent.Add(-1)
		return none
	}
	old, grown := 0, false
	rc.Control(func(fd uintptr) {
		old, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
		grown = err == nil && setSendBuffer(int(fd), bigSendBuffer)
	})
	if !grown {
		b.lent.Add(-1)
		return none
	}
	return func() {
		// The kernel reports the doubled size; set what yields it back.
		rc.Control(func(fd uintptr) { setSendBuffer(int(fd), old/2) })
		b.lent.Add(-1)
	}
}

// setSendBuffer sets a socket's send buffer to n (the kernel doubles it).
// SO_SNDBUFFORCE passes net.core.wmem_max (root: warewulfd serves ports 67
// and 69); without it SO_SNDBUF is capped there, and a cap below the
// autotuned size would shrink the buffer, so it is left alone.
func setSendBuffer(fd, n int) bool {
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n) == nil ||
		wmemMax() >= n && unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n) == nil
}
