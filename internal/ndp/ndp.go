// Package ndp answers IPv6 router solicitations on the provisioning
// network with a router advertisement that configures nothing.
//
// Why: iPXE's `ifconf` (what its autoboot runs) waits for every network
// configurator, IPv6 included. Without a router on the link its router
// solicitations back off for about 16 s before it gives up, and every
// boot waits that long after DHCP is done. One answer ends the wait.
//
// The advertisement says as little as the protocol allows: router
// lifetime 0 (not a default router), no prefix, M and O clear (no
// DHCPv6), hop limit, reachable time and retransmission timer
// unspecified; only the source link-layer address option, which saves the
// receiver a neighbor solicitation. It is sent only in answer to a
// solicitation, never unsolicited.
package ndp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// Addresses and limits of RFC 4861.
var (
	allNodes   = net.ParseIP("ff02::1")
	allRouters = net.ParseIP("ff02::2")
)

const (
	ndpHopLimit = 255 // every NDP packet is sent, and must arrive, with 255
	// minMulticastGap is MIN_DELAY_BETWEEN_RAS: multicast answers (to a
	// solicitation from the unspecified address) are at most one per 3 s.
	minMulticastGap = 3 * time.Second

	optSourceLinkAddr = 1
)

// Serve answers router solicitations that arrive on the named interfaces
// until ctx is done. It fails if the socket cannot be opened (no IPv6, or
// not root) or an interface does not exist.
func Serve(ctx context.Context, interfaces []string) error {
	if len(interfaces) == 0 {
		return errors.New("ndp: no interface to answer on")
	}
	ifaces := map[int]*net.Interface{}
	for _, name := range interfaces {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return fmt.Errorf("ndp: interface %q: %w", name, err)
		}
		ifaces[ifi.Index] = ifi
	}
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return fmt.Errorf("ndp: %w", err)
	}
	defer c.Close()
	p := c.IPv6PacketConn()
	var filter ipv6.ICMPFilter
	filter.SetAll(true)
	filter.Accept(ipv6.ICMPTypeRouterSolicitation)
	for _, set := range []func() error{
		func() error { return p.SetICMPFilter(&filter) },
		func() error { return p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagInterface, true) },
		func() error { return p.SetHopLimit(ndpHopLimit) },
		func() error { return p.SetMulticastHopLimit(ndpHopLimit) },
		func() error { return p.SetMulticastLoopback(false) },
	} {
		if err := set(); err != nil {
			return fmt.Errorf("ndp: %w", err)
		}
	}
	// Solicitations go to all-routers; a host that is not a router has not
	// joined that group, so the kernel would not deliver them.
	for _, ifi := range ifaces {
		if err := p.JoinGroup(ifi, &net.IPAddr{IP: allRouters}); err != nil {
			return fmt.Errorf("ndp: joining ff02::2 on %s: %w", ifi.Name, err)
		}
		logrus.Infof("ndp: answering router solicitations on %s", ifi.Name)
	}

	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r := &responder{conn: p, ifaces: ifaces, lastMulticast: map[int]time.Time{}}
	buf := make([]byte, 1500)
	for {
		n, cm, src, err := p.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("ndp: %w", err)
		}
		r.handle(buf[:n], cm, src)
	}
}

type responder struct {
	conn   *ipv6.PacketConn
	ifaces map[int]*net.Interface

	mu            sync.Mutex
	lastMulticast map[int]time.Time
}

// handle answers one packet if it is a valid solicitation from a
// neighbor on one of our interfaces; anything else is dropped.
func (r *responder) handle(b []byte, cm *ipv6.ControlMessage, src net.Addr) {
	defer func() {
		if v := recover(); v != nil {
			logrus.Errorf("ndp: dropped a packet from %v that crashed its handler: %v", src, v)
		}
	}()
	if cm == nil {
		return
	}
	ifi, ok := r.ifaces[cm.IfIndex]
	if !ok {
		return
	}
	from, _ := src.(*net.IPAddr)
	if from == nil {
		return
	}
	if err := checkSolicitation(b, cm.HopLimit, from.IP); err != nil {
		logrus.Debugf("ndp: dropped a packet from %s on %s: %v", from.IP, ifi.Name, err)
		return
	}
	if isOwnAddress(ifi, from.IP) {
		return // this host's own solicitation, looped back
	}
	// Answer the solicitor directly (RFC 7772); one from the unspecified
	// address can only be answered to all nodes, at a limited rate.
	dst := &net.IPAddr{IP: from.IP, Zone: ifi.Name}
	if from.IP.IsUnspecified() {
		if !r.multicastAllowed(ifi.Index) {
			return
		}
		dst = &net.IPAddr{IP: allNodes, Zone: ifi.Name}
	}
	out := &ipv6.ControlMessage{IfIndex: ifi.Index, HopLimit: ndpHopLimit}
	if _, err := r.conn.WriteTo(advertisement(ifi.HardwareAddr), out, dst); err != nil {
		logrus.Warnf("ndp: answering %s on %s: %v", dst.IP, ifi.Name, err)
		return
	}
	logrus.Debugf("ndp: answered the router solicitation of %s on %s", from.IP, ifi.Name)
}

func (r *responder) multicastAllowed(ifindex int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.lastMulticast[ifindex]) < minMulticastGap {
		return false
	}
	r.lastMulticast[ifindex] = now
	return true
}

func isOwnAddress(ifi *net.Interface, ip net.IP) bool {
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// checkSolicitation applies the validity checks of RFC 4861 6.1.1 to an
// ICMPv6 message (the checksum the kernel has checked).
func checkSolicitation(b []byte, hopLimit int, src net.IP) error {
	if hopLimit != ndpHopLimit {
		return fmt.Errorf("hop limit %d, not 255: not from this link", hopLimit)
	}
	if len(b) < 8 {
		return fmt.Errorf("%d bytes: too short for a router solicitation", len(b))
	}
	if ipv6.ICMPType(b[0]) != ipv6.ICMPTypeRouterSolicitation {
		return fmt.Errorf("ICMPv6 type %d, not a router solicitation", b[0])
	}
	if b[1] != 0 {
		return fmt.Errorf("code %d, not 0", b[1])
	}
	if src.To16() == nil || src.To4() != nil {
		return fmt.Errorf("source %v is not an IPv6 address", src)
	}
	for opts := b[8:]; len(opts) > 0; {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return errors.New("an option of zero or overlong length")
		}
		if opts[0] == optSourceLinkAddr && src.IsUnspecified() {
			return errors.New("a source link-layer address from the unspecified address")
		}
		opts = opts[int(opts[1])*8:]
	}
	return nil
}

// advertisement is the router advertisement sent in answer: it configures
// nothing (see the package comment). mac, when set, goes in the source
// link-layer address option. The checksum is left to the kernel.
func advertisement(mac net.HardwareAddr) []byte {
	body := make([]byte, 12) // cur hop limit, flags, router lifetime, reachable time, retrans timer: all 0
	if len(mac) > 0 {
		n := (2 + len(mac) + 7) / 8 // option length in units of 8 bytes
		opt := make([]byte, n*8)
		opt[0], opt[1] = optSourceLinkAddr, byte(n)
		copy(opt[2:], mac)
		body = append(body, opt...)
	}
	m := icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement, Body: &icmp.RawBody{Data: body}}
	b, err := m.Marshal(nil)
	if err != nil {
		panic(err) // a fixed, well-formed message
	}
	return b
}
