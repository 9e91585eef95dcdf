package warewulfd

import (
	"container/list"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// A booting node needs one or two HTTP connections, a benchmark or a
// proxy a few dozen. Without caps one host's idle keep-alive connections
// fill the file-descriptor table and HTTP and TFTP stop for everyone.
const (
	// perAddrConns caps the connections of one source address.
	perAddrConns = 128
	// fdReserve is kept out of the HTTP cap for TFTP transfers, DHCP, logs
	// and the build's files.
	fdReserve = 256
	// maxConnsCeiling bounds the cap when the fd limit is huge (systemd
	// raises it to 524,288): each connection costs some 30 KB.
	maxConnsCeiling = 1 << 16
	// capWarnEvery is how often refusals are logged (with their count), so
	// a flood does not flood the log too.
	capWarnEvery = 10 * time.Second
)

// connCaps returns the overall connection cap for the process's fd limit:
// half of what the reserve leaves, as a connection sending a file holds
// that file open too.
func connCaps() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur <= 2*fdReserve {
		return fdReserve / 2
	}
	return int(min((lim.Cur-fdReserve)/2, maxConnsCeiling))
}

// connLimiter counts HTTP connections per source address and overall. At
// a cap it makes room by closing the longest-idle keep-alive connection
// (of that address, at its cap; of anyone, at the overall cap), and
// refuses the new connection when none is idle.
type connLimiter struct {
	perAddr, max int
	log          *logrus.Logger

	mu     sync.Mutex
	total  int
	byAddr map[netip.Addr]int
	idle   *list.List // of *limitedConn, longest idle first
	warned map[string]time.Time
	missed map[string]int
}

func newConnLimiter(perAddr, max int, log *logrus.Logger) *connLimiter {
	return &connLimiter{perAddr: perAddr, max: max, log: log, byAddr: map[netip.Addr]int{},
		idle: list.New(), warned: map[string]time.Time{}, missed: map[string]int{}}
}

// limitedConn is an accepted connection the limiter counts. It embeds the
// *net.TCPConn so that sendfile (ReadFrom) and SyscallConn still reach it.
type limitedConn struct {
	*net.TCPConn
	l    *connLimiter
	addr netip.Addr
	idle *list.Element // set while idle between requests
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(c.l.release(c))
	return c.TCPConn.Close()
}

func (l *connLimiter) release(c *limitedConn) func() {
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if c.idle != nil {
			l.idle.Remove(c.idle)
			c.idle = nil
		}
		l.total--
		if l.byAddr[c.addr]--; l.byAddr[c.addr] <= 0 {
			delete(l.byAddr, c.addr)
		}
	}
}

// admit counts a new connection, or returns nil when it must be refused.
func (l *connLimiter) admit(tc *net.TCPConn) *limitedConn {
	ap, _ := netip.ParseAddrPort(tc.RemoteAddr().String())
	addr := ap.Addr().Unmap()
	var evict *limitedConn
	l.mu.Lock()
	switch {
	case l.byAddr[addr] >= l.perAddr:
		evict = l.oldestIdle(func(c *limitedConn) bool { return c.addr == addr })
		if evict == nil {
			l.mu.Unlock()
			l.warn("address "+addr.String(), "%d connections refused in %s from %s: at the cap of %d per address, none idle", addr, l.perAddr)
			return nil
		}
	case l.total >= l.max:
		evict = l.oldestIdle(func(*limitedConn) bool { return true })
		if evict == nil {
			l.mu.Unlock()
			l.warn("overall", "%d connections refused in %s (the last from %s): at the overall cap of %d (fd limit), none idle", addr, l.max)
			return nil
		}
	}
	if evict != nil {
		l.idle.Remove(evict.idle)
		evict.idle = nil
	}
	c := &limitedConn{TCPConn: tc, l: l, addr: addr}
	l.total++
	l.byAddr[addr]++
	l.mu.Unlock()
	if evict != nil {
		evict.Close() // counted out by its own release
		l.warn("evict", "%d idle keep-alive connections closed in %s to make room at a cap (the last of %s)", evict.addr)
	}
	return c
}

// oldestIdle finds the longest-idle connection that match accepts.
func (l *connLimiter) oldestIdle(match func(*limitedConn) bool) *limitedConn {
	for e := l.idle.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*limitedConn); match(c) {
			return c
		}
	}
	return nil
}

// warn logs a refusal or an eviction at warning, at most once per capWarnEvery per
// key, with how many there were; format takes that count and the
// interval, then args.
func (l *connLimiter) warn(key, format string, args ...any) {
	l.mu.Lock()
	l.missed[key]++
	n := l.missed[key]
	now := time.Now()
	if now.Sub(l.warned[key]) < capWarnEvery {
		l.mu.Unlock()
		return
	}
	l.warned[key], l.missed[key] = now, 0
	if len(l.warned) > 1024 { // a spoofed-address flood: forget old keys
		for k, t := range l.warned {
			if now.Sub(t) >= capWarnEvery {
				delete(l.warned, k)
				delete(l.missed, k)
			}
		}
	}
	l.mu.Unlock()
	l.log.Warnf("warewulfd: http: "+format, append([]any{n, capWarnEvery}, args...)...)
}

// connState is the http.Server's ConnState: it keeps the idle list.
func (l *connLimiter) connState(nc net.Conn, st http.ConnState) {
	c, ok := nc.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case st == http.StateIdle && c.idle == nil:
		c.idle = l.idle.PushBack(c)
	case st != http.StateIdle && c.idle != nil:
		l.idle.Remove(c.idle)
		c.idle = nil
	}
}

// limitedListener admits accepted connections through a connLimiter.
type limitedListener struct {
	net.Listener
	l *connLimiter
}

func (ln limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				ln.l.warn("accept", "%d accept errors in %s: out of file descriptors (%v) below the connection cap of %d", err, ln.l.max)
			}
			return nil, err
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			return c, nil
		}
		if lc := ln.l.admit(tc); lc != nil {
			return lc, nil
		}
		tc.SetLinger(0) // a reset: no TIME_WAIT kept for a refused flood
		tc.Close()
	}
}
