package dhcp

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
)

var (
	serverIP = net.IPv4(10, 0, 0, 1).To4()
	n1MAC    = mustMAC("52:54:00:00:00:01")
	n2MAC    = mustMAC("52:54:00:00:00:02")
	strayMAC = mustMAC("52:54:00:aa:bb:cc")
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

const testNodes = `
nodeprofiles:
  default:
    cluster name: clusterA
    network devices:
      default:
        device: eth0
        netmask: 255.255.255.0
        gateway: 10.0.0.254
nodes:
  n1:
    profiles: [default]
    network devices:
      default:
        hwaddr: 52:54:00:00:00:01
        ipaddr: 10.0.0.11
      ib:
        hwaddr: 52:54:00:00:01:01
        ipaddr: 10.1.0.11
        netmask: 255.255.0.0
  n2:
    profiles: [default]
    network devices:
      default:
        hwaddr: 52:54:00:00:00:02
        ipaddr: 10.0.0.12
`

// testConfig writes a warewulf.conf in a temporary directory; extra is
// appended under the dhcp: section.
func testConfig(t testing.TB, dhcpExtra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	conf := "ipaddr: 10.0.0.1\nnetmask: 255.255.255.0\nwarewulf:\n  port: 9873\n" +
		"dhcp:\n  enabled: true\n" + dhcpExtra +
		"paths:\n  sysconfdir: etc\n  localstatedir: state\n"
	file := filepath.Join(dir, "warewulf.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func testDB(t testing.TB) *node.DB {
	t.Helper()
	db, err := node.Parse([]byte(testNodes))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newTestServer(t testing.TB, dhcpExtra string) *Server {
	t.Helper()
	cfg := testConfig(t, dhcpExtra)
	db := testDB(t)
	s, err := New(cfg, func() *node.DB { return db })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const withRange = "  range start: 10.0.0.100\n  range end: 10.0.0.101\n"

func discover(t testing.TB, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func arch(a iana.Arch) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptClientArch(a))
}

func vendor(v string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptClassIdentifier(v))
}

// exchange sends req through the byte-level handler, as the socket loop
// does, and parses the answer.
func exchange(t testing.TB, s *Server, req *dhcpv4.DHCPv4, port int) (*dhcpv4.DHCPv4, *net.UDPAddr) {
	t.Helper()
	peer := &net.UDPAddr{IP: net.IPv4zero, Port: ClientPort}
	if !isZero(req.ClientIPAddr) {
		peer.IP = req.ClientIPAddr
	}
	out, dst := s.HandlePacket(req.ToBytes(), peer, serverIP, port)
	if out == nil {
		return nil, nil
	}
	resp, err := dhcpv4.FromBytes(out)
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	if resp.TransactionID != req.TransactionID || resp.OpCode != dhcpv4.OpcodeBootReply {
		t.Fatalf("reply xid %v opcode %v, want %v reply", resp.TransactionID, resp.OpCode, req.TransactionID)
	}
	return resp, dst
}

func TestBootFileByClient(t *testing.T) {
	s := newTestServer(t, "")
	ipxeURL := "http://10.0.0.1:9873/ipxe/${mac}?assetkey=${asset:uristring}"
	cases := []struct {
		name       string
		mods       []dhcpv4.Modifier
		file       string
		vendorEcho string
	}{
		{"bios pxe", []dhcpv4.Modifier{arch(iana.INTEL_X86PC), vendor("PXEClient:Arch:00000:UNDI:002001")}, "undionly.kpxe", "PXEClient"},
		{"uefi x86_64", []dhcpv4.Modifier{arch(iana.EFI_X86_64), vendor("PXEClient:Arch:00007:UNDI:003016")}, "ipxe-snponly-x86_64.efi", "PXEClient"},
		{"uefi bc", []dhcpv4.Modifier{arch(iana.EFI_BC), vendor("PXEClient:Arch:00009:UNDI:003016")}, "ipxe-snponly-x86_64.efi", "PXEClient"},
		{"uefi arm64", []dhcpv4.Modifier{arch(iana.EFI_ARM64), vendor("PXEClient:Arch:00011:UNDI:003000")}, "arm64-efi/snponly.efi", "PXEClient"},
		{"ipxe bios", []dhcpv4.Modifier{arch(iana.INTEL_X86PC), vendor("PXEClient:Arch:00000:UNDI:002001"), dhcpv4.WithUserClass("iPXE", false)}, ipxeURL, "PXEClient"},
		{"ipxe efi rfc3004 user class", []dhcpv4.Modifier{arch(iana.EFI_X86_64), dhcpv4.WithUserClass("iPXE", true)}, ipxeURL, ""},
		{"uefi http boot", []dhcpv4.Modifier{arch(iana.EFI_X86_64_HTTP), vendor("HTTPClient:Arch:00016:UNDI:003001")}, "http://10.0.0.1:9873/efi/ipxe-snponly-x86_64.efi", "HTTPClient"},
		{"uefi http boot arm64", []dhcpv4.Modifier{arch(iana.EFI_ARM64_HTTP), vendor("HTTPClient:Arch:00019:UNDI:003001")}, "http://10.0.0.1:9873/efi/arm64-efi/snponly.efi", "HTTPClient"},
		{"not a network boot", nil, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			offer, dst := exchange(t, s, discover(t, n1MAC, c.mods...), ServerPort)
			if offer == nil {
				t.Fatal("no OFFER")
			}
			if offer.MessageType() != dhcpv4.MessageTypeOffer {
				t.Fatalf("got %v, want OFFER", offer.MessageType())
			}
			if !offer.YourIPAddr.Equal(net.IPv4(10, 0, 0, 11)) {
				t.Errorf("yiaddr %v, want 10.0.0.11", offer.YourIPAddr)
			}
			if offer.BootFileName != c.file {
				t.Errorf("boot file %q, want %q", offer.BootFileName, c.file)
			}
			if got := offer.ClassIdentifier(); got != c.vendorEcho {
				t.Errorf("vendor class %q, want %q", got, c.vendorEcho)
			}
			if !offer.ServerIPAddr.Equal(serverIP) || !offer.ServerIdentifier().Equal(serverIP) {
				t.Errorf("siaddr %v server id %v, want %v", offer.ServerIPAddr, offer.ServerIdentifier(), serverIP)
			}
			if !dst.IP.Equal(net.IPv4bcast) || dst.Port != ClientPort {
				t.Errorf("sent to %v, want broadcast port 68", dst)
			}
			checkNodeOptions(t, offer, "n1")
		})
	}
}

func checkNodeOptions(t *testing.T, m *dhcpv4.DHCPv4, host string) {
	t.Helper()
	if got := m.HostName(); got != host {
		t.Errorf("hostname %q, want %q", got, host)
	}
	if got := m.DomainName(); got != "clusterA" {
		t.Errorf("domain %q, want clusterA", got)
	}
	if got := net.IP(m.SubnetMask()).String(); got != "255.255.255.0" {
		t.Errorf("netmask %s", got)
	}
	if r := m.Router(); len(r) != 1 || !r[0].Equal(net.IPv4(10, 0, 0, 254)) {
		t.Errorf("router %v, want 10.0.0.254", r)
	}
	if d := m.DNS(); len(d) != 1 || !d[0].Equal(serverIP) {
		t.Errorf("dns %v, want %v", d, serverIP)
	}
	if lt := m.IPAddressLeaseTime(0); lt.Seconds() != 3600 {
		t.Errorf("lease time %v", lt)
	}
}

func TestKnownNodeRequestRenewAndNak(t *testing.T) {
	s := newTestServer(t, "")
	offer, _ := exchange(t, s, discover(t, n1MAC), ServerPort)
	req, err := dhcpv4.NewRequestFromOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	ack, _ := exchange(t, s, req, ServerPort)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(net.IPv4(10, 0, 0, 11)) {
		t.Fatalf("got %v, want ACK of 10.0.0.11", ack)
	}
	checkNodeOptions(t, ack, "n1")

	renew, err := dhcpv4.NewRenewFromAck(ack)
	if err != nil {
		t.Fatal(err)
	}
	again, dst := exchange(t, s, renew, ServerPort)
	if again == nil || again.MessageType() != dhcpv4.MessageTypeAck || !again.YourIPAddr.Equal(net.IPv4(10, 0, 0, 11)) {
		t.Fatalf("renewal: got %v, want ACK", again)
	}
	if !dst.IP.Equal(net.IPv4(10, 0, 0, 11)) {
		t.Errorf("renewal answered to %v, want the client's address", dst)
	}

	// A second device of the node gets its own address and a unique name.
	ib := discover(t, mustMAC("52:54:00:00:01:01"))
	off, _ := exchange(t, s, ib, ServerPort)
	if off == nil || !off.YourIPAddr.Equal(net.IPv4(10, 1, 0, 11)) || off.HostName() != "n1-ib" ||
		net.IP(off.SubnetMask()).String() != "255.255.0.0" {
		t.Fatalf("second device: %v", off)
	}

	// INIT-REBOOT with an address that is not the node's: NAK.
	wrong, _ := dhcpv4.New(dhcpv4.WithHwAddr(n1MAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 0, 0, 77))))
	nak, dst := exchange(t, s, wrong, ServerPort)
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak || !dst.IP.Equal(net.IPv4bcast) {
		t.Fatalf("wrong address: got %v to %v, want broadcast NAK", nak, dst)
	}

	// A REQUEST for another server's offer: silence.
	other, _ := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 0, 2))))
	if r, _ := exchange(t, s, other, ServerPort); r != nil {
		t.Fatalf("answered a request meant for another server: %v", r)
	}
}

func TestUnknownMACWithoutRange(t *testing.T) {
	s := newTestServer(t, "")
	if r, _ := exchange(t, s, discover(t, strayMAC, arch(iana.EFI_X86_64)), ServerPort); r != nil {
		t.Fatalf("unknown MAC without a range got %v", r)
	}
	// Its INIT-REBOOT for an address another server gave it: not ours to NAK.
	reboot, _ := dhcpv4.New(dhcpv4.WithHwAddr(strayMAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 0, 0, 150))))
	if r, _ := exchange(t, s, reboot, ServerPort); r != nil {
		t.Fatalf("answered another server's client: %v", r)
	}
}

func TestUnknownMACFromRangePersistsAndReleases(t *testing.T) {
	s := newTestServer(t, withRange)
	offer, _ := exchange(t, s, discover(t, strayMAC, arch(iana.EFI_X86_64)), ServerPort)
	if offer == nil || !offer.YourIPAddr.Equal(net.IPv4(10, 0, 0, 100)) {
		t.Fatalf("got %v, want OFFER of 10.0.0.100", offer)
	}
	if offer.BootFileName != "ipxe-snponly-x86_64.efi" {
		t.Errorf("unknown UEFI client boot file %q", offer.BootFileName)
	}
	if offer.HostName() != "" {
		t.Errorf("unknown client got hostname %q", offer.HostName())
	}
	// A second unknown client does not get the offered address.
	other := mustMAC("52:54:00:aa:bb:cd")
	o2, _ := exchange(t, s, discover(t, other), ServerPort)
	if o2 == nil || !o2.YourIPAddr.Equal(net.IPv4(10, 0, 0, 101)) {
		t.Fatalf("second unknown: got %v, want 10.0.0.101", o2)
	}
	// The range (two addresses) is now full.
	if r, _ := exchange(t, s, discover(t, mustMAC("52:54:00:aa:bb:ce")), ServerPort); r != nil {
		t.Fatalf("full range still offered %v", r.YourIPAddr)
	}
	req, _ := dhcpv4.NewRequestFromOffer(offer)
	ack, _ := exchange(t, s, req, ServerPort)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(net.IPv4(10, 0, 0, 100)) {
		t.Fatalf("got %v, want ACK", ack)
	}

	// INIT-REBOOT asking for an address of the range it does not hold: NAK.
	wrong, _ := dhcpv4.New(dhcpv4.WithHwAddr(strayMAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 0, 0, 101))))
	if nak, _ := exchange(t, s, wrong, ServerPort); nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("wrong range address: got %v, want NAK", nak)
	}

	// A restart keeps the lease.
	s2, err := New(s.cfg, s.nodes)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := exchange(t, s2, discover(t, strayMAC), ServerPort)
	if again == nil || !again.YourIPAddr.Equal(net.IPv4(10, 0, 0, 100)) {
		t.Fatalf("after restart: got %v, want 10.0.0.100 again", again)
	}
	if r, _ := exchange(t, s2, discover(t, other), ServerPort); r == nil || !r.YourIPAddr.Equal(net.IPv4(10, 0, 0, 101)) {
		t.Fatalf("after restart the other client got %v, want 10.0.0.101", r)
	}

	// RELEASE frees the address for someone else.
	rel, _ := dhcpv4.NewReleaseFromACK(ack)
	if r, _ := exchange(t, s2, rel, ServerPort); r != nil {
		t.Fatalf("RELEASE answered: %v", r)
	}
	newcomer := mustMAC("52:54:00:aa:bb:cf")
	if r, _ := exchange(t, s2, discover(t, newcomer), ServerPort); r == nil || !r.YourIPAddr.Equal(net.IPv4(10, 0, 0, 100)) {
		t.Fatalf("after RELEASE: got %v, want 10.0.0.100", r)
	}
}

func TestDeclineHoldsAddressBack(t *testing.T) {
	s := newTestServer(t, withRange)
	offer, _ := exchange(t, s, discover(t, strayMAC), ServerPort)
	req, _ := dhcpv4.NewRequestFromOffer(offer)
	if ack, _ := exchange(t, s, req, ServerPort); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("no ACK: %v", ack)
	}
	decl, _ := dhcpv4.New(dhcpv4.WithHwAddr(strayMAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)))
	if r, _ := exchange(t, s, decl, ServerPort); r != nil {
		t.Fatalf("DECLINE answered: %v", r)
	}
	next, _ := exchange(t, s, discover(t, strayMAC), ServerPort)
	if next == nil || next.YourIPAddr.Equal(offer.YourIPAddr) {
		t.Fatalf("after DECLINE got %v, want another address than %v", next, offer.YourIPAddr)
	}
	// The declined address survives a restart too.
	s2, _ := New(s.cfg, s.nodes)
	n2, _ := exchange(t, s2, discover(t, mustMAC("52:54:00:aa:bb:dd")), ServerPort)
	if n2 == nil || n2.YourIPAddr.Equal(offer.YourIPAddr) {
		t.Fatalf("after restart got %v, declined %v", n2, offer.YourIPAddr)
	}
}

func TestRangeSkipsNodeAddresses(t *testing.T) {
	s := newTestServer(t, "  range start: 10.0.0.11\n  range end: 10.0.0.13\n")
	o, _ := exchange(t, s, discover(t, strayMAC), ServerPort)
	if o == nil || !o.YourIPAddr.Equal(net.IPv4(10, 0, 0, 13)) {
		t.Fatalf("got %v, want 10.0.0.13 (11 and 12 belong to nodes)", o)
	}
}

func TestProxyMode(t *testing.T) {
	s := newTestServer(t, "  proxy: true\n")
	uuid := dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, make([]byte, 16)...))
	d := discover(t, strayMAC, arch(iana.EFI_X86_64), vendor("PXEClient:Arch:00007:UNDI:003016"), dhcpv4.WithOption(uuid))
	offer, dst := exchange(t, s, d, ServerPort)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("got %v, want a proxy OFFER", offer)
	}
	if !offer.YourIPAddr.IsUnspecified() {
		t.Errorf("proxy OFFER hands out %v", offer.YourIPAddr)
	}
	if offer.BootFileName != "ipxe-snponly-x86_64.efi" || offer.ClassIdentifier() != "PXEClient" || !offer.ServerIPAddr.Equal(serverIP) {
		t.Errorf("proxy OFFER file %q class %q siaddr %v", offer.BootFileName, offer.ClassIdentifier(), offer.ServerIPAddr)
	}
	if got := offer.Options.Get(dhcpv4.OptionVendorSpecificInformation); string(got) != string(pxeDiscoveryControl) {
		t.Errorf("option 43 %v", got)
	}
	if !offer.Options.Has(dhcpv4.OptionClientMachineIdentifier) || offer.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
		t.Errorf("proxy OFFER options: %v", offer.Options)
	}
	if !dst.IP.Equal(net.IPv4bcast) {
		t.Errorf("proxy OFFER sent to %v", dst)
	}
	// A node known in nodes.conf also gets boot information only.
	if o, _ := exchange(t, s, discover(t, n1MAC, arch(iana.INTEL_X86PC)), ServerPort); o == nil || !o.YourIPAddr.IsUnspecified() || o.BootFileName != "undionly.kpxe" {
		t.Fatalf("known node in proxy mode: %v", o)
	}
	// Not a PXE client: silence.
	if r, _ := exchange(t, s, discover(t, strayMAC), ServerPort); r != nil {
		t.Fatalf("proxy answered a plain client: %v", r)
	}
	// The REQUEST of the DHCP server's offer, on port 67: not ours.
	req, _ := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 0, 2))))
	if r, _ := exchange(t, s, req, ServerPort); r != nil {
		t.Fatalf("proxy answered a REQUEST on port 67: %v", r)
	}
	// The boot-server REQUEST on port 4011, from the address the client got.
	bs, _ := dhcpv4.New(dhcpv4.WithHwAddr(strayMAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(net.IPv4(10, 0, 0, 150)), arch(iana.EFI_X86_64), vendor("PXEClient:Arch:00007:UNDI:003016"))
	peer := &net.UDPAddr{IP: net.IPv4(10, 0, 0, 150), Port: PXEPort}
	out, dst := s.HandlePacket(bs.ToBytes(), peer, serverIP, PXEPort)
	if out == nil {
		t.Fatal("no ACK on port 4011")
	}
	ack, _ := dhcpv4.FromBytes(out)
	if ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != "ipxe-snponly-x86_64.efi" || dst != peer {
		t.Fatalf("port 4011: %v to %v", ack, dst)
	}
}

func TestMalformedPacketsAreDropped(t *testing.T) {
	s := newTestServer(t, withRange)
	good := discover(t, n1MAC, arch(iana.EFI_X86_64)).ToBytes()
	badCookie := append([]byte(nil), good...)
	badCookie[236] = 0
	badOption := append([]byte(nil), good[:240]...)
	badOption = append(badOption, byte(dhcpv4.OptionClientSystemArchitectureType.Code()), 200, 0, 7)
	reply := append([]byte(nil), good...)
	reply[0] = byte(dhcpv4.OpcodeBootReply)
	noHW := append([]byte(nil), good...)
	noHW[2] = 0
	noType, _ := dhcpv4.New(dhcpv4.WithHwAddr(n1MAC))
	noType.Options.Del(dhcpv4.OptionDHCPMessageType)
	shortArch := discover(t, n1MAC, dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{7}),
		dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte{200, 'i'})).ToBytes()
	noAddrRequest, _ := dhcpv4.New(dhcpv4.WithHwAddr(strayMAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest))
	cases := map[string][]byte{
		"empty":               nil,
		"one byte":            {1},
		"truncated header":    good[:100],
		"no cookie":           good[:236],
		"bad cookie":          badCookie,
		"option overruns":     badOption,
		"reply opcode":        reply,
		"no hardware address": noHW,
		"no message type":     noType.ToBytes(),
		"request without ip":  noAddrRequest.ToBytes(),
		"garbage":             []byte(strings.Repeat("\xff", 600)),
	}
	for name, data := range cases {
		if out, dst := s.HandlePacket(data, &net.UDPAddr{IP: net.IPv4zero, Port: 68}, serverIP, ServerPort); out != nil {
			t.Errorf("%s: answered %d bytes to %v", name, len(out), dst)
		}
	}
	// Short options are read safely: the client is treated as plain.
	out, _ := s.HandlePacket(shortArch, &net.UDPAddr{IP: net.IPv4zero, Port: 68}, serverIP, ServerPort)
	if out == nil {
		t.Fatal("a discover with a one-byte option 93 was not answered")
	}
	if m, _ := dhcpv4.FromBytes(out); m.BootFileName != "" {
		t.Errorf("a one-byte option 93 chose boot file %q", m.BootFileName)
	}
}

func TestParseArch(t *testing.T) {
	for in, want := range map[string]int{"00:00": 0, "00:07": 7, "00:0B": 11, "000b": 11, "0x10": 16} {
		if got, err := ParseArch(in); err != nil || got != want {
			t.Errorf("ParseArch(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "zz", "1:2:3:4:5", "0x"} {
		if _, err := ParseArch(bad); err == nil {
			t.Errorf("ParseArch(%q) accepted", bad)
		}
	}
}

func TestNewRejectsBadRange(t *testing.T) {
	for _, extra := range []string{
		"  range start: 10.0.0.200\n  range end: 10.0.0.100\n",
		"  range start: 10.0.1.10\n  range end: 10.0.1.20\n",
		"  range start: 10.0.0.10\n",
	} {
		cfg := testConfig(t, extra)
		if _, err := New(cfg, func() *node.DB { return nil }); err == nil {
			t.Errorf("accepted %q", extra)
		}
	}
}

// FuzzHandlePacket feeds arbitrary datagrams to the packet handler in both
// modes and on both ports: it must never panic and every answer must parse.
func FuzzHandlePacket(f *testing.F) {
	for _, m := range []*dhcpv4.DHCPv4{
		discover(f, n1MAC, arch(iana.INTEL_X86PC), vendor("PXEClient:Arch:00000:UNDI:002001")),
		discover(f, strayMAC, arch(iana.EFI_X86_64_HTTP), vendor("HTTPClient:Arch:00016")),
		discover(f, n2MAC, dhcpv4.WithUserClass("iPXE", false)),
	} {
		f.Add(m.ToBytes(), uint8(0))
		req, _ := dhcpv4.NewRequestFromOffer(m)
		f.Add(req.ToBytes(), uint8(1))
	}
	f.Add([]byte{1, 1, 6, 0}, uint8(2))
	normal := newTestServer(f, withRange)
	proxy := newTestServer(f, "  proxy: true\n")
	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		s := normal
		if sel&1 == 1 {
			s = proxy
		}
		port := ServerPort
		if sel&2 == 2 {
			port = PXEPort
		}
		out, dst := s.HandlePacket(data, &net.UDPAddr{IP: net.IPv4zero, Port: ClientPort}, serverIP, port)
		if out == nil {
			return
		}
		if dst == nil {
			t.Fatal("an answer without a destination")
		}
		if _, err := dhcpv4.FromBytes(out); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
	})
}
