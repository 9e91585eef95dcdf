package ndp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/testenv"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// raFields are the fixed fields of a router advertisement (RFC 4861 4.2).
type raFields struct {
	curHopLimit    uint8
	flags          uint8 // M 0x80, O 0x40, preference 0x18
	routerLifetime uint16
	reachable      uint32
	retrans        uint32
	options        []byte
}

func parseRA(b []byte) (raFields, error) {
	if len(b) < 16 || ipv6.ICMPType(b[0]) != ipv6.ICMPTypeRouterAdvertisement || b[1] != 0 {
		return raFields{}, fmt.Errorf("not a router advertisement: % x", b)
	}
	return raFields{b[4], b[5], binary.BigEndian.Uint16(b[6:8]),
		binary.BigEndian.Uint32(b[8:12]), binary.BigEndian.Uint32(b[12:16]), b[16:]}, nil
}

// checkRA asserts that an advertisement configures nothing and carries
// only mac as its source link-layer address.
func checkRA(t *testing.T, b []byte, mac net.HardwareAddr) {
	t.Helper()
	f, err := parseRA(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.curHopLimit != 0 || f.flags != 0 || f.routerLifetime != 0 || f.reachable != 0 || f.retrans != 0 {
		t.Errorf("advertisement configures something: %+v", f)
	}
	want := append([]byte{optSourceLinkAddr, 1}, mac...)
	if !bytes.Equal(f.options, want) {
		t.Errorf("options % x, want only the source link-layer address % x", f.options, want)
	}
}

func TestAdvertisement(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x99, 0, 1}
	b := advertisement(mac)
	if len(b) != 24 {
		t.Fatalf("advertisement is %d bytes, want 24 (16 + one 8-byte option)", len(b))
	}
	checkRA(t, b, mac)
	if b := advertisement(nil); len(b) != 16 {
		t.Errorf("without a link-layer address: %d bytes, want 16", len(b))
	}
}

func TestCheckSolicitation(t *testing.T) {
	ll := net.ParseIP("fe80::1")
	rs := []byte{133, 0, 0, 0, 0, 0, 0, 0}
	slla := []byte{1, 1, 0x52, 0x54, 0, 0x99, 0, 1}
	cases := []struct {
		name string
		b    []byte
		hop  int
		src  net.IP
		ok   bool
	}{
		{"plain", rs, 255, ll, true},
		{"with source link-layer address", append(append([]byte{}, rs...), slla...), 255, ll, true},
		{"from the unspecified address", rs, 255, net.IPv6unspecified, true},
		{"routed (hop limit 64)", rs, 64, ll, false},
		{"truncated", rs[:4], 255, ll, false},
		{"empty", nil, 255, ll, false},
		{"not a solicitation", []byte{135, 0, 0, 0, 0, 0, 0, 0}, 255, ll, false},
		{"code 1", []byte{133, 1, 0, 0, 0, 0, 0, 0}, 255, ll, false},
		{"zero-length option", append(append([]byte{}, rs...), 1, 0, 0, 0, 0, 0, 0, 0), 255, ll, false},
		{"option longer than the packet", append(append([]byte{}, rs...), 1, 2, 0, 0, 0, 0, 0, 0), 255, ll, false},
		{"one-byte option", append(append([]byte{}, rs...), 1), 255, ll, false},
		{"link-layer address from the unspecified address", append(append([]byte{}, rs...), slla...), 255, net.IPv6unspecified, false},
		{"IPv4 source", rs, 255, net.ParseIP("10.0.0.1"), false},
		{"no source", rs, 255, nil, false},
	}
	for _, c := range cases {
		err := checkSolicitation(c.b, c.hop, c.src)
		if (err == nil) != c.ok {
			t.Errorf("%s: got error %v, want ok=%v", c.name, err, c.ok)
		}
	}
	// Random bytes never crash the check.
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 100000; i++ {
		b := make([]byte, rng.Intn(64))
		rng.Read(b)
		if rng.Intn(2) == 0 && len(b) > 1 {
			b[0], b[1] = 133, 0
		}
		checkSolicitation(b, 255, ll)
	}
}

// TestServe sends real router solicitations over a veth pair between two
// network namespaces the test makes: malformed ones and one from an
// interface the responder does not serve get no answer, a valid one gets
// an advertisement that configures nothing, from the server's link-local
// address, with hop limit 255, to the solicitor.
func TestServe(t *testing.T) {
	testenv.Need(t, "needs root", os.Geteuid() == 0)
	_, err := exec.LookPath("ip")
	testenv.Need(t, "needs ip (iproute2)", err == nil)
	testenv.Long(t, "network namespace test")
	srv, cli := testenv.Netns(t, "ndp-s"), testenv.Netns(t, "ndp-c")
	for _, ns := range []string{srv, cli} {
		// No duplicate address detection (link-local addresses usable at
		// once) and no solicitations of the kernel's own in the way.
		err := testenv.InNetns(ns, func() error {
			for _, k := range []string{"accept_dad", "router_solicitations"} {
				if err := os.WriteFile("/proc/sys/net/ipv6/conf/default/"+k, []byte("0\n"), 0o644); err != nil {
					return err
				}
			}
			return nil
		})
		testenv.Need(t, fmt.Sprintf("needs IPv6 in a namespace: %v", err), err == nil)
	}
	// wws/wwc are served; wwx/wwy is a second link the responder ignores.
	for _, pair := range [][2]string{{"wws", "wwc"}, {"wwx", "wwy"}} {
		testenv.Veth(t, srv, pair[0], cli, pair[1])
	}
	// A veth end has no link-local address until both ends are up and the
	// kernel has configured it; sending before then is "network unreachable".
	for _, end := range [][2]string{{srv, "wws"}, {srv, "wwx"}, {cli, "wwc"}, {cli, "wwy"}} {
		waitLinkLocal(t, end[0], end[1])
	}
	var srvMAC net.HardwareAddr
	if err := testenv.InNetns(srv, func() error {
		ifi, err := net.InterfaceByName("wws")
		srvMAC = ifi.HardwareAddr
		return err
	}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- testenv.InNetns(srv, func() error { return Serve(ctx, []string{"wws"}) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	err = testenv.InNetns(cli, func() error {
		c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		defer c.Close()
		p := c.IPv6PacketConn()
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeRouterAdvertisement)
		p.SetICMPFilter(&f)
		p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagInterface|ipv6.FlagDst, true)
		try := func(iface string, b []byte, hop int) error {
			ifi, _ := net.InterfaceByName(iface)
			cm := &ipv6.ControlMessage{HopLimit: hop, IfIndex: ifi.Index}
			_, err := p.WriteTo(b, cm, &net.IPAddr{IP: allRouters, Zone: iface})
			return err
		}
		send := func(iface string, b []byte, hop int) {
			if err := try(iface, b, hop); err != nil {
				t.Errorf("sending % x on %s: %v", b, iface, err)
			}
		}
		// recv returns the next advertisement within d, or nil.
		recv := func(d time.Duration) ([]byte, *ipv6.ControlMessage, net.Addr) {
			buf := make([]byte, 1500)
			p.SetReadDeadline(time.Now().Add(d))
			n, cm, src, err := p.ReadFrom(buf)
			if err != nil {
				return nil, nil, nil
			}
			return buf[:n], cm, src
		}
		cliIfi, _ := net.InterfaceByName("wwc")
		rs := []byte{133, 0, 0, 0, 0, 0, 0, 0}
		slla := append([]byte{1, 1}, cliIfi.HardwareAddr...)

		// The responder may still be opening its socket and the links
		// coming up: wait until it answers, then drain.
		deadline := time.Now().Add(5 * time.Second)
		for {
			try("wwc", rs, 255)
			if b, _, _ := recv(200 * time.Millisecond); b != nil {
				break
			}
			if time.Now().After(deadline) {
				return errors.New("no advertisement within 5 s")
			}
		}
		for b, _, _ := recv(300 * time.Millisecond); b != nil; b, _, _ = recv(300 * time.Millisecond) {
		}

		// Nothing answers these.
		send("wwc", rs, 64)                                           // routed
		send("wwc", []byte{133, 1, 0, 0, 0, 0, 0, 0}, 255)            // code 1
		send("wwc", append(append([]byte{}, rs...), 1, 0, 0, 0), 255) // zero-length option
		send("wwc", append(append([]byte{}, rs...), 1, 3, 0, 0), 255) // overlong option
		send("wwc", rs[:4], 255)                                      // truncated
		send("wwy", rs, 255)                                          // not a served interface
		if b, _, src := recv(time.Second); b != nil {
			return fmt.Errorf("a malformed or foreign solicitation was answered from %v: % x", src, b)
		}

		// A valid one, as iPXE sends it, gets the advertisement.
		start := time.Now()
		send("wwc", append(append([]byte{}, rs...), slla...), 255)
		b, cm, src := recv(2 * time.Second)
		if b == nil {
			return errors.New("the responder stopped answering after the malformed packets")
		}
		t.Logf("answered in %v from %v: % x", time.Since(start), src, b)
		checkRA(t, b, srvMAC)
		from := src.(*net.IPAddr).IP
		if !from.IsLinkLocalUnicast() {
			t.Errorf("advertisement from %v, want a link-local address", from)
		}
		if cm.HopLimit != 255 {
			t.Errorf("advertisement arrived with hop limit %d, want 255", cm.HopLimit)
		}
		if cm.IfIndex != cliIfi.Index {
			t.Errorf("advertisement arrived on interface %d, want wwc (%d)", cm.IfIndex, cliIfi.Index)
		}
		if !cm.Dst.IsLinkLocalUnicast() {
			t.Errorf("advertisement sent to %v, want the solicitor's own address", cm.Dst)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitLinkLocal waits up to 5 s for dev in namespace ns to hold a usable
// (not tentative) link-local address.
func waitLinkLocal(t *testing.T, ns, dev string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, _ := exec.Command("ip", "-n", ns, "-6", "addr", "show", "dev", dev, "scope", "link").CombinedOutput()
		if strings.Contains(string(out), "inet6 fe80") && !strings.Contains(string(out), "tentative") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s has no link-local address after 5 s:\n%s", dev, ns, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FuzzCheckSolicitation: any packet from the network is judged without a
// panic, and one that passes has the shape the checks promise.
func FuzzCheckSolicitation(f *testing.F) {
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0}, 255, []byte(net.ParseIP("fe80::1")))
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x52, 0x54, 0, 0, 0, 1}, 255, []byte(net.ParseIP("fe80::1")))
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 255, []byte(net.IPv6unspecified))
	f.Fuzz(func(t *testing.T, b []byte, hopLimit int, src []byte) {
		if checkSolicitation(b, hopLimit, net.IP(src)) != nil {
			return
		}
		if hopLimit != 255 || len(b) < 8 || b[0] != 133 || b[1] != 0 || len(src) != net.IPv6len {
			t.Fatalf("accepted: hop limit %d, % x from % x", hopLimit, b, src)
		}
	})
}
