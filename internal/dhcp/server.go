// Package dhcp is warewulfd's built-in DHCP server: static leases from
// nodes.conf, a dynamic range for discovery, iPXE chain loading, and proxy
// DHCP for networks where another server hands out addresses. It also
// renders the same decisions as dnsmasq and ISC dhcpd configs.
package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// Ports of DHCP and of the PXE boot server (proxy DHCP requests).
const (
	ServerPort = 67
	ClientPort = 68
	PXEPort    = 4011
)

// offerHold is how long an OFFERed dynamic address stays reserved for the
// client to REQUEST it.
const offerHold = time.Minute

// Server answers DHCP on the interfaces warewulf.conf names.
type Server struct {
	cfg       *config.Config
	nodes     func() *node.DB
	leaseTime time.Duration
	network   *net.IPNet
	now       func() time.Time

	mu   sync.Mutex
	idx  *hostIndex
	pool *pool

	rules sync.Map // server address -> []BootRule: warewulf.conf does not change under a running server
}

// New prepares a server. nodes returns the current node database; warewulfd
// swaps it on reload, so the server calls it per packet (it must be cheap).
func New(cfg *config.Config, nodes func() *node.DB) (*Server, error) {
	if nodes == nil {
		return nil, errors.New("dhcp: no node database")
	}
	start, end := net.ParseIP(cfg.DHCP.RangeStart), net.ParseIP(cfg.DHCP.RangeEnd)
	if (start == nil) != (end == nil) {
		return nil, errors.New("dhcp: range start and range end must be set together")
	}
	network := &net.IPNet{IP: net.ParseIP(cfg.Ipaddr).To4(), Mask: net.IPMask(net.ParseIP(cfg.Netmask).To4())}
	network.IP = network.IP.Mask(network.Mask)
	for _, ip := range []net.IP{start, end} {
		if ip != nil && !network.Contains(ip) {
			return nil, fmt.Errorf("dhcp: range address %s is outside the network %s", ip, network)
		}
	}
	p, err := newPool(start, end, cfg.LeaseFile())
	if err != nil {
		return nil, err
	}
	return &Server{
		cfg:       cfg,
		nodes:     nodes,
		leaseTime: time.Duration(cfg.DHCP.LeaseTime) * time.Second,
		network:   network,
		now:       time.Now,
		pool:      p,
	}, nil
}

// listener is one socket: an interface, the server's address on it, a port.
type listener struct {
	iface string
	ip    net.IP
	port  int
	conn  net.PacketConn
}

// Serve answers until ctx is cancelled.
func (s *Server) Serve(ctx context.Context) error {
	ifaces, err := s.interfaces()
	if err != nil {
		return err
	}
	ports := []int{ServerPort}
	if s.cfg.DHCP.Proxy {
		ports = append(ports, PXEPort)
	}
	var ls []*listener
	closeAll := func() {
		for _, l := range ls {
			l.conn.Close()
		}
	}
	for name, ip := range ifaces {
		for _, port := range ports {
			conn, err := server4.NewIPv4UDPConn(name, &net.UDPAddr{Port: port})
			if err != nil {
				closeAll()
				return fmt.Errorf("dhcp: listening on %s port %d: %w", name, port, err)
			}
			ls = append(ls, &listener{iface: name, ip: ip, port: port, conn: conn})
			logrus.Infof("dhcp: listening on %s (%s) port %d", name, ip, port)
		}
	}
	errs := make(chan error, len(ls))
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.loop(ctx, l)
		}()
	}
	select {
	case <-ctx.Done():
		err = nil
	case err = <-errs:
	}
	closeAll()
	wg.Wait()
	return err
}

func (s *Server) loop(ctx context.Context, l *listener) error {
	buf := make([]byte, 65536)
	for {
		n, peer, err := l.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dhcp: reading on %s: %w", l.iface, err)
		}
		up, _ := peer.(*net.UDPAddr)
		out, dst := s.HandlePacket(buf[:n], up, l.ip, l.port)
		if out == nil {
			continue
		}
		if _, err := l.conn.WriteTo(out, dst); err != nil {
			logrus.Warnf("dhcp: sending to %s on %s: %v", dst, l.iface, err)
		}
	}
}

// interfaces maps each interface to serve to the server's address on it:
// `dhcp: interfaces`, else the interface that holds ipaddr.
func (s *Server) interfaces() (map[string]net.IP, error) {
	want := net.ParseIP(s.cfg.Ipaddr)
	out := map[string]net.IP{}
	if len(s.cfg.DHCP.Interfaces) > 0 {
		for _, name := range s.cfg.DHCP.Interfaces {
			ifc, err := net.InterfaceByName(name)
			if err != nil {
				return nil, fmt.Errorf("dhcp: interfaces: %q: %w", name, err)
			}
			ip := addrOn(ifc, want)
			if ip == nil {
				return nil, fmt.Errorf("dhcp: interfaces: %q has no IPv4 address", name)
			}
			out[name] = ip
		}
		return out, nil
	}
	ifcs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for i := range ifcs {
		if ip := addrOn(&ifcs[i], want); ip != nil && ip.Equal(want) {
			out[ifcs[i].Name] = ip
			return out, nil
		}
	}
	return nil, fmt.Errorf("dhcp: no interface holds ipaddr %s; name one in dhcp: interfaces", s.cfg.Ipaddr)
}

// addrOn returns want if ifc holds it, else ifc's first IPv4 address.
func addrOn(ifc *net.Interface, want net.IP) net.IP {
	addrs, err := ifc.Addrs()
	if err != nil {
		return nil
	}
	var first net.IP
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil {
			continue
		}
		if ipn.IP.Equal(want) {
			return ipn.IP.To4()
		}
		if first == nil {
			first = ipn.IP.To4()
		}
	}
	return first
}

// HandlePacket answers one datagram that arrived from peer on the server's
// address serverIP and port: it returns the reply and where to send it, or
// nil. A packet that does not parse, or that trips any bug, is dropped with
// a debug log.
func (s *Server) HandlePacket(data []byte, peer *net.UDPAddr, serverIP net.IP, port int) (out []byte, dst *net.UDPAddr) {
	defer func() {
		if r := recover(); r != nil {
			logrus.Errorf("dhcp: dropped a packet from %v that crashed its handler: %v", peer, r)
			out, dst = nil, nil
		}
	}()
	req, err := dhcpv4.FromBytes(data)
	if err != nil {
		logrus.Debugf("dhcp: dropped a malformed packet from %v: %v", peer, err)
		return nil, nil
	}
	resp, err := s.Reply(req, serverIP, port)
	if err != nil {
		logrus.Debugf("dhcp: dropped a packet from %v: %v", peer, err)
		return nil, nil
	}
	if resp == nil {
		return nil, nil
	}
	return resp.ToBytes(), destination(req, resp, peer, port)
}

// destination applies RFC 2131 section 4.1: through the relay, else to the
// client's address when it has one, else broadcast. PXE boot-server
// requests (port 4011) are answered where they came from.
func destination(req, resp *dhcpv4.DHCPv4, peer *net.UDPAddr, port int) *net.UDPAddr {
	switch {
	case port == PXEPort && peer != nil:
		return peer
	case !isZero(req.GatewayIPAddr):
		return &net.UDPAddr{IP: req.GatewayIPAddr, Port: ServerPort}
	case resp.MessageType() == dhcpv4.MessageTypeNak:
		return &net.UDPAddr{IP: net.IPv4bcast, Port: ClientPort}
	case !isZero(req.ClientIPAddr):
		return &net.UDPAddr{IP: req.ClientIPAddr, Port: ClientPort}
	default:
		return &net.UDPAddr{IP: net.IPv4bcast, Port: ClientPort}
	}
}

func isZero(ip net.IP) bool { return ip == nil || ip.IsUnspecified() }

// Reply decides the answer to one request received on serverIP:port; nil
// means stay silent (not our client, not our server, nothing to give).
func (s *Server) Reply(req *dhcpv4.DHCPv4, serverIP net.IP, port int) (*dhcpv4.DHCPv4, error) {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil, fmt.Errorf("opcode %v is not a request", req.OpCode)
	}
	if len(req.ClientHWAddr) == 0 {
		return nil, errors.New("no client hardware address")
	}
	if serverIP = serverIP.To4(); serverIP == nil {
		return nil, errors.New("server address is not IPv4")
	}
	if s.cfg.DHCP.Proxy || port == PXEPort {
		return s.proxyReply(req, serverIP, port)
	}
	mac := req.ClientHWAddr.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	host := s.index().byMAC[mac]
	now := s.now()
	switch mt := req.MessageType(); mt {
	case dhcpv4.MessageTypeDiscover:
		if host != nil {
			return s.answer(req, dhcpv4.MessageTypeOffer, host.IP, host, serverIP)
		}
		ip := s.pool.pick(mac, req.RequestedIPAddress(), s.taken(serverIP), now)
		if ip == nil {
			logrus.Debugf("dhcp: no address for unknown %s (no free dynamic range address)", mac)
			return nil, nil
		}
		if l, ok := s.pool.byMAC[mac]; !ok || l.Offered || l.IP != ip.String() || !l.Expires.After(now) {
			s.pool.put(&Lease{MAC: mac, IP: ip.String(), Hostname: req.HostName(), Expires: now.Add(offerHold), Offered: true}, ip4(ip))
		}
		return s.answer(req, dhcpv4.MessageTypeOffer, ip, nil, serverIP)

	case dhcpv4.MessageTypeRequest:
		sid := req.ServerIdentifier()
		ours := sid != nil && sid.Equal(serverIP)
		if sid != nil && !ours {
			// The client took another server's offer: free ours.
			if l, ok := s.pool.byMAC[mac]; ok && l.Offered {
				s.pool.drop(l)
			}
			return nil, nil
		}
		want := req.RequestedIPAddress()
		if want == nil {
			want = req.ClientIPAddr // RENEWING or REBINDING
		}
		if isZero(want) {
			return nil, errors.New("REQUEST names no address")
		}
		if host != nil {
			if want.Equal(host.IP) {
				logrus.Infof("dhcp: ACK %s to %s (%s)", host.IP, mac, host.Hostname)
				return s.answer(req, dhcpv4.MessageTypeAck, host.IP, host, serverIP)
			}
			return s.nak(req, serverIP, fmt.Sprintf("%s belongs to %s at %s", mac, host.Node, host.IP)), nil
		}
		if v := ip4(want); s.pool.free(v, mac, s.taken(serverIP), now) {
			s.pool.put(&Lease{MAC: mac, IP: want.String(), Hostname: req.HostName(), Expires: now.Add(s.leaseTime)}, v)
			if err := s.pool.save(); err != nil {
				logrus.Errorf("dhcp: saving leases: %v", err)
			}
			logrus.Infof("dhcp: ACK %s to unknown %s (dynamic)", want, mac)
			return s.answer(req, dhcpv4.MessageTypeAck, want.To4(), nil, serverIP)
		}
		// Without a range another server may own unknown clients: only
		// refuse what was asked of us.
		if ours || (s.pool.hasRange() && s.network.Contains(want)) {
			return s.nak(req, serverIP, fmt.Sprintf("%s is not available to %s", want, mac)), nil
		}
		return nil, nil

	case dhcpv4.MessageTypeDecline:
		ip := req.RequestedIPAddress()
		if host != nil {
			logrus.Warnf("dhcp: node %s (%s) reports its address %s already in use on the network", host.Node, mac, ip)
			return nil, nil
		}
		if l, ok := s.pool.byMAC[mac]; ok && ip != nil && l.IP == ip.String() {
			s.pool.drop(l)
			s.pool.put(&Lease{IP: l.IP, Expires: now.Add(s.leaseTime)}, ip4(ip))
			logrus.Warnf("dhcp: %s declined %s (in use on the network); holding it back", mac, ip)
			if err := s.pool.save(); err != nil {
				logrus.Errorf("dhcp: saving leases: %v", err)
			}
		}
		return nil, nil

	case dhcpv4.MessageTypeRelease:
		if l, ok := s.pool.byMAC[mac]; ok && l.IP == req.ClientIPAddr.String() {
			s.pool.drop(l)
			logrus.Infof("dhcp: %s released %s", mac, l.IP)
			if err := s.pool.save(); err != nil {
				logrus.Errorf("dhcp: saving leases: %v", err)
			}
		}
		return nil, nil

	case dhcpv4.MessageTypeInform:
		resp, err := s.answer(req, dhcpv4.MessageTypeAck, nil, host, serverIP)
		if resp != nil {
			resp.Options.Del(dhcpv4.OptionIPAddressLeaseTime)
		}
		return resp, err

	default:
		return nil, fmt.Errorf("message type %v from %s not handled", mt, mac)
	}
}

// index returns the static leases of the current node database, rebuilt
// only when warewulfd has swapped in a new one. Call with s.mu held.
func (s *Server) index() *hostIndex {
	db := s.nodes()
	if s.idx == nil || s.idx.db != db {
		s.idx = newHostIndex(s.cfg, db)
	}
	return s.idx
}

// taken tells the pool which addresses are not its to give.
func (s *Server) taken(serverIP net.IP) func(net.IP) bool {
	ctl := net.ParseIP(s.cfg.Ipaddr)
	return func(ip net.IP) bool {
		return s.idx.usedIP[ip.String()] || ip.Equal(serverIP) || ip.Equal(ctl)
	}
}

// answer builds an OFFER or ACK giving ip (nil for INFORM) with the
// node's network settings and boot file.
func (s *Server) answer(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, ip net.IP, host *Host, serverIP net.IP) (*dhcpv4.DHCPv4, error) {
	resp, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithServerIP(serverIP),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)),
		dhcpv4.WithOption(dhcpv4.OptDNS(serverIP)),
	)
	if err != nil {
		return nil, err
	}
	if ip != nil {
		resp.YourIPAddr = ip
		resp.UpdateOption(dhcpv4.OptIPAddressLeaseTime(s.leaseTime))
	} else if mt == dhcpv4.MessageTypeAck {
		resp.ClientIPAddr = req.ClientIPAddr
	}
	mask, domain := s.network.Mask, s.cfg.DHCP.Domain
	if host != nil {
		mask, domain = host.Netmask, host.Domain
		resp.UpdateOption(dhcpv4.OptHostName(host.Hostname))
		if host.Gateway != nil {
			resp.UpdateOption(dhcpv4.OptRouter(host.Gateway))
		}
	}
	resp.UpdateOption(dhcpv4.OptSubnetMask(mask))
	if domain != "" {
		resp.UpdateOption(dhcpv4.OptDomainName(domain))
	}
	if err := s.setBoot(req, resp, serverIP); err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *Server) nak(req *dhcpv4.DHCPv4, serverIP net.IP, why string) *dhcpv4.DHCPv4 {
	logrus.Infof("dhcp: NAK: %s", why)
	resp, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)),
		dhcpv4.WithOption(dhcpv4.OptMessage(why)),
	)
	if err != nil {
		return nil
	}
	return resp
}

// setBoot adds the boot file that the shared BootRules choose for the
// client; clients that are not network-booting get none.
func (s *Server) setBoot(req, resp *dhcpv4.DHCPv4, serverIP net.IP) error {
	client := ClientOf(req)
	if !client.PXE() {
		return nil
	}
	rules, err := s.bootRules(serverIP)
	if err != nil {
		return err
	}
	rule, ok := Choose(rules, client)
	if !ok {
		logrus.Debugf("dhcp: no boot rule for %s (arch %d, vendor class %q)", req.ClientHWAddr, client.Arch, client.VendorClass)
		return nil
	}
	if len(rule.File) < 128 {
		resp.BootFileName = rule.File
	}
	if len(rule.File) >= 128 || req.IsOptionRequested(dhcpv4.OptionBootfileName) {
		resp.UpdateOption(dhcpv4.OptBootFileName(rule.File))
	}
	switch {
	case rule.EchoVendorClass != "":
		resp.UpdateOption(dhcpv4.OptClassIdentifier(rule.EchoVendorClass))
	case strings.HasPrefix(client.VendorClass, VendorPXE):
		resp.UpdateOption(dhcpv4.OptClassIdentifier(VendorPXE))
	}
	logrus.Debugf("dhcp: boot rule %s for %s: %s", rule.Tag, req.ClientHWAddr, rule.File)
	return nil
}

func (s *Server) bootRules(serverIP net.IP) ([]BootRule, error) {
	key := serverIP.String()
	if r, ok := s.rules.Load(key); ok {
		return r.([]BootRule), nil
	}
	r, err := BootRules(s.cfg, key)
	if err != nil {
		return nil, err
	}
	s.rules.Store(key, r)
	return r, nil
}

// pxeDiscoveryControl is PXE vendor option 43 saying "no boot server
// discovery, download the boot file named here" (PXE 2.1, sub-option 6 = 8).
var pxeDiscoveryControl = []byte{6, 1, 8, 255}

// proxyReply answers a network-booting client with boot information only:
// an OFFER without an address to a DISCOVER on port 67, and an ACK to a
// REQUEST sent to the boot-server port 4011.
func (s *Server) proxyReply(req *dhcpv4.DHCPv4, serverIP net.IP, port int) (*dhcpv4.DHCPv4, error) {
	client := ClientOf(req)
	if !client.PXE() {
		return nil, nil
	}
	var mt dhcpv4.MessageType
	switch {
	case port != PXEPort && req.MessageType() == dhcpv4.MessageTypeDiscover:
		mt = dhcpv4.MessageTypeOffer
	case port == PXEPort && (req.MessageType() == dhcpv4.MessageTypeRequest || req.MessageType() == dhcpv4.MessageTypeInform):
		mt = dhcpv4.MessageTypeAck
	default:
		return nil, nil
	}
	resp, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithServerIP(serverIP),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(VendorPXE)),
		dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, pxeDiscoveryControl),
		dhcpv4.WithOptionCopied(req, dhcpv4.OptionClientMachineIdentifier),
	)
	if err != nil {
		return nil, err
	}
	resp.YourIPAddr = net.IPv4zero
	if err := s.setBoot(req, resp, serverIP); err != nil {
		return nil, err
	}
	if resp.BootFileName == "" && !resp.Options.Has(dhcpv4.OptionBootfileName) {
		return nil, nil
	}
	logrus.Infof("dhcp: proxy %s to %s: %s", mt, req.ClientHWAddr, resp.BootFileName)
	return resp, nil
}
