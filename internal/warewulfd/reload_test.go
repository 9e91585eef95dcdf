package warewulfd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// keepAlive is one HTTP/1.1 connection that stays open between requests.
type keepAlive struct {
	c net.Conn
	r *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{c: c, r: bufio.NewReader(c)}
}

// get sends a request and returns the response with its body unread.
func (k *keepAlive) get(t *testing.T, path string) *http.Response {
	t.Helper()
	if _, err := fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: warewulfd\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp
}

// startDownload begins a GET and reads the first 64 KiB of the body.
func startDownload(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	return resp, head
}

func expectRefused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("%s: %v, want connection refused", addr, err)
	}
}

// A port change moves HTTP: the new port answers, the old one refuses new
// connections, and what was in flight on the old one finishes, through a
// later graceful shutdown too.
func TestReloadMovesHTTP(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), confAddr: true, imageSize: 32 << 20})
	oldAddr := e.srv.HTTPAddr().String()
	image := e.imageFile("image.img")
	resp, head := startDownload(t, e.base+"/image/52:54:00:00:00:01")
	keep := dialKeepAlive(t, oldAddr)
	r := keep.get(t, "/ipxe/52:54:00:00:00:01")
	io.Copy(io.Discard, r.Body)
	if strings.Contains(e.logs.String(), "stage=image") {
		t.Fatal("the download finished before the reload: make the image bigger")
	}

	newPort := freePort(t)
	newAddr := "127.0.0.1:" + itoa(newPort)
	e.setConfig(func(c *config.Config) { c.Warewulf.Port = newPort })
	start := time.Now()
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	t.Logf("reload with an HTTP move: %v", time.Since(start))
	e.awaitLog(t, "http moved from "+oldAddr+" to "+newAddr)
	if got := e.srv.HTTPAddr().String(); got != newAddr {
		t.Fatalf("listening on %s, want %s", got, newAddr)
	}
	if body := httpGet(t, "http://"+newAddr+"/ipxe/52:54:00:00:00:01"); !strings.Contains(body, "booting n1") {
		t.Fatalf("new port: %s", body)
	}
	expectRefused(t, oldAddr)

	// The keep-alive connection on the old port goes on being served.
	r = keep.get(t, "/ipxe/52:54:00:00:00:01")
	if b, _ := io.ReadAll(r.Body); r.StatusCode != 200 || !strings.Contains(string(b), "booting n1") {
		t.Fatalf("keep-alive request after the move: %s %s", r.Status, b)
	}
	// The download in flight completes byte for byte.
	got, err := readAllFrom(resp, head)
	if err != nil || !bytes.Equal(got, image) {
		t.Fatalf("download across the move: %v, %d of %d bytes", err, len(got), len(image))
	}
	e.awaitLog(t, "stage=image", "status=200", "bytes="+itoa(len(image)))

	// A graceful shutdown drains the old port's connections too.
	r = keep.get(t, "/image/52:54:00:00:00:01")
	head = make([]byte, 64<<10)
	if _, err := io.ReadFull(r.Body, head); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()
	e.awaitLog(t, "shutting down")
	got, err = readAllFrom(r, head)
	if err != nil || !bytes.Equal(got, image) {
		t.Fatalf("download across shutdown: %v, %d of %d bytes", err, len(got), len(image))
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	expectRefused(t, newAddr)
}

func mustPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(p, &n)
	return n
}

// A port that is taken keeps HTTP where it was; the rest of the reload
// (here a new node) applies, and a later reload retries the move.
func TestReloadHTTPPortTaken(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), confAddr: true})
	oldAddr := e.srv.HTTPAddr().String()
	blocker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	taken := blocker.Addr().String()

	writeFile(t, e.cfg.NodesConf(), []byte(nodesConf("")+"  n9:\n    profiles: [default]\n    network devices:\n      default:\n        hwaddr: 52:54:00:00:00:09\n"))
	e.setConfig(func(c *config.Config) { c.Warewulf.Port = mustPort(t, taken) })
	err = e.srv.Reload()
	if err == nil || !strings.Contains(err.Error(), taken) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Reload onto a taken port: %v", err)
	}
	e.awaitLog(t, "level=error", "cannot listen on "+taken+", still serving on "+oldAddr)
	if got := e.srv.HTTPAddr().String(); got != oldAddr {
		t.Fatalf("listening on %s, want %s still", got, oldAddr)
	}
	if body := httpGet(t, "http://"+oldAddr+"/ipxe/52:54:00:00:00:09"); !strings.Contains(body, "booting n9") {
		t.Fatalf("old port after the failed move, with the new nodes.conf: %s", body)
	}

	// Once the port is free, a reload (SIGHUP) moves HTTP there.
	blocker.Close()
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if body := httpGet(t, "http://"+taken+"/ipxe/52:54:00:00:00:09"); !strings.Contains(body, "booting n9") {
		t.Fatalf("new port: %s", body)
	}
	expectRefused(t, oldAddr)

	// The wildcard address on the same port conflicts with the socket it
	// would replace: the error says to restart.
	e.setConfig(func(c *config.Config) { c.Warewulf.ListenAddress = "" })
	if err := e.srv.Reload(); err == nil || !strings.Contains(err.Error(), "restart warewulfd") {
		t.Fatalf("Reload onto the wildcard address on the same port: %v", err)
	}
	if body := httpGet(t, "http://"+taken+"/ipxe/52:54:00:00:00:09"); !strings.Contains(body, "booting n9") {
		t.Fatalf("after the refused move: %s", body)
	}
}

// gateWriter holds the first write until open is closed.
type gateWriter struct {
	bytes.Buffer
	once        sync.Once
	first, open chan struct{}
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.first); <-g.open })
	return g.Buffer.Write(p)
}

// TFTP turned off by a reload stops answering (a transfer in flight
// finishes), and turned on again answers.
func TestReloadTFTPOffOn(t *testing.T) {
	e, want := tftpEnv(t)
	addr := e.srv.TFTPAddr().String()
	w := &gateWriter{first: make(chan struct{}), open: make(chan struct{})}
	fetched := make(chan error, 1)
	go func() { fetched <- tftpGet(addr, "undionly.kpxe", 0, w, 2*time.Second) }()
	select {
	case <-w.first:
	case err := <-fetched:
		t.Fatalf("transfer: %v", err)
	}

	e.setConfig(func(c *config.Config) { c.TFTP.Enabled = false })
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	e.awaitLog(t, "tftp stopped on "+addr)
	if a := e.srv.TFTPAddr(); a != nil {
		t.Fatalf("tftp still on %s", a)
	}
	close(w.open)
	if err := <-fetched; err != nil || !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("transfer in flight across the stop: %v, %d of %d bytes", err, w.Len(), len(want))
	}
	if err := tftpGet(addr, "undionly.kpxe", 0, io.Discard, 300*time.Millisecond); err == nil {
		t.Fatal("tftp answers after it was turned off")
	}

	e.setConfig(func(c *config.Config) { c.TFTP.Enabled = true })
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	e.awaitLog(t, "tftp started on")
	a := e.srv.TFTPAddr()
	if a == nil {
		t.Fatal("tftp not started")
	}
	var got bytes.Buffer
	if err := tftpGet(a.String(), "undionly.kpxe", 1468, &got, 2*time.Second); err != nil || !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("after turning tftp on: %v, %d of %d bytes", err, got.Len(), len(want))
	}
}

// vethNet is two network namespaces joined by a veth pair: warewulfd's end
// (10.98.0.1/24, interface wws) and a client's (interface wwc).
type vethNet struct{ srv, cli string }

func newVethNet(t *testing.T) *vethNet {
	testenv.Need(t, "needs root", os.Geteuid() == 0)
	_, err := exec.LookPath("ip")
	testenv.Need(t, "needs ip (iproute2)", err == nil)
	testenv.Long(t, "network namespace test")
	n := &vethNet{srv: testenv.Netns(t, "reload-s"), cli: testenv.Netns(t, "reload-c")}
	for _, ns := range []string{n.srv, n.cli} {
		// IPv6 link-local addresses usable at once (no duplicate address
		// detection), and no router solicitations of the kernel's own.
		testenv.InNetns(ns, func() error {
			for _, k := range []string{"accept_dad", "router_solicitations"} {
				os.WriteFile("/proc/sys/net/ipv6/conf/default/"+k, []byte("0\n"), 0o644)
			}
			return nil
		})
	}
	testenv.Veth(t, n.srv, "wws", n.cli, "wwc")
	testenv.Run(t, "ip", "-n", n.cli, "link", "set", "wwc", "address", "52:54:00:98:00:01")
	testenv.Run(t, "ip", "-n", n.srv, "addr", "add", "10.98.0.1/24", "dev", "wws")
	return n
}

// udhcpc gets a lease in the client namespace with busybox udhcpc and
// returns the address.
func (n *vethNet) udhcpc(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script, out := filepath.Join(dir, "script"), filepath.Join(dir, "ip")
	body := "#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip\" > " + out + "\nexit 0\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.cli, "udhcpc", "-f", "-q", "-n", "-i", "wwc", "-s", script, "-t", "5", "-T", "1")
	if log, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("udhcpc: %v\n%s", err, log)
	}
	ip, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("udhcpc reported no lease: %v", err)
	}
	return strings.TrimSpace(string(ip))
}

// A changed DHCP range restarts the built-in DHCP server: a client then
// gets an address from the new range. A nodes.conf change needs no
// restart: the server reads the nodes per packet.
func TestReloadRestartsDHCP(t *testing.T) {
	_, err := exec.LookPath("udhcpc")
	testenv.Need(t, "needs busybox udhcpc", err == nil)
	n := newVethNet(t)
	testenv.Run(t, "ip", "-n", n.srv, "addr", "del", "10.98.0.1/24", "dev", "wws")
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), services: true, netns: n.srv, edit: func(c *config.Config) {
		c.Ipaddr, c.Netmask, c.Network = "10.98.0.1", "255.255.255.0", "10.98.0.0"
		c.DHCP.Enabled, c.DHCP.Interfaces = true, []string{"wws"}
		c.DHCP.RangeStart, c.DHCP.RangeEnd = "10.98.0.100", "10.98.0.110"
		no := false
		c.Warewulf.AnswerRouterSolicitations = &no
	}})
	// The interface has no address yet when warewulfd starts: DHCP fails,
	// and a reload (SIGHUP) once it has one tries again.
	e.awaitLog(t, "level=error", "wws", "has no IPv4 address (serving without DHCP")
	testenv.Run(t, "ip", "-n", n.srv, "addr", "add", "10.98.0.1/24", "dev", "wws")
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	e.awaitLog(t, "dhcp restarted (it had stopped on an error; trying again)")
	if ip := n.udhcpc(t); ip != "10.98.0.100" {
		t.Fatalf("first lease %s, want 10.98.0.100", ip)
	}

	e.setConfig(func(c *config.Config) { c.DHCP.RangeStart, c.DHCP.RangeEnd = "10.98.0.150", "10.98.0.160" })
	start := time.Now()
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	t.Logf("reload with a DHCP restart: %v", time.Since(start))
	e.awaitLog(t, "dhcp restarted (dhcp: range end, dhcp: range start changed)")
	if ip := n.udhcpc(t); ip != "10.98.0.150" {
		t.Fatalf("lease after the range changed: %s, want 10.98.0.150", ip)
	}

	writeFile(t, e.cfg.NodesConf(), []byte(nodesConf("")+"  n9:\n    profiles: [default]\n    network devices:\n      default:\n        hwaddr: 52:54:00:98:00:01\n        ipaddr: 10.98.0.9\n        netmask: 255.255.255.0\n"))
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if ip := n.udhcpc(t); ip != "10.98.0.9" {
		t.Fatalf("lease of node n9: %s, want 10.98.0.9", ip)
	}
	if c := strings.Count(e.logs.String(), "dhcp restarted"); c != 2 {
		t.Fatalf("dhcp restarted %d times, want twice (nodes.conf needs no restart):\n%s", c, e.logs.String())
	}

	e.setConfig(func(c *config.Config) { c.DHCP.Enabled = false })
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	e.awaitLog(t, "dhcp stopped (dhcp: enabled changed)")
}

// Answering IPv6 router solicitations follows `warewulf: answer router
// solicitations` across reloads: on, a solicitation from the client's
// link is answered; off again, it is not.
func TestReloadRouterSolicitationAnswers(t *testing.T) {
	n := newVethNet(t)
	no := false
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), services: true, netns: n.srv, edit: func(c *config.Config) {
		c.Ipaddr, c.Netmask, c.Network = "10.98.0.1", "255.255.255.0", "10.98.0.0"
		c.DHCP.Interfaces = []string{"wws"}
		c.Warewulf.AnswerRouterSolicitations = &no
	}})
	waitLinkLocal(t, n.srv, "wws")
	waitLinkLocal(t, n.cli, "wwc")
	var p *ipv6.PacketConn
	var ifIndex int
	err := testenv.InNetns(n.cli, func() error {
		ifi, err := net.InterfaceByName("wwc")
		if err != nil {
			return err
		}
		ifIndex = ifi.Index
		c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		t.Cleanup(func() { c.Close() })
		p = c.IPv6PacketConn()
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeRouterAdvertisement)
		return p.SetICMPFilter(&f)
	})
	testenv.Need(t, fmt.Sprintf("needs IPv6 in a namespace: %v", err), err == nil)
	// answered sends a router solicitation, as iPXE does, and reports
	// whether an advertisement comes back within d.
	answered := func(d time.Duration) bool {
		rs := []byte{133, 0, 0, 0, 0, 0, 0, 0}
		cm := &ipv6.ControlMessage{HopLimit: 255, IfIndex: ifIndex}
		if _, err := p.WriteTo(rs, cm, &net.IPAddr{IP: net.ParseIP("ff02::2")}); err != nil {
			t.Fatalf("sending a router solicitation: %v", err)
		}
		buf := make([]byte, 1500)
		p.SetReadDeadline(time.Now().Add(d))
		_, _, _, err := p.ReadFrom(buf)
		return err == nil
	}
	if answered(500 * time.Millisecond) {
		t.Fatal("answered with answer router solicitations: false")
	}

	e.setConfig(func(c *config.Config) { c.Warewulf.AnswerRouterSolicitations = nil }) // default: on
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	e.awaitLog(t, "router solicitation answers started (warewulf: answer router solicitations changed)")
	for deadline := time.Now().Add(5 * time.Second); !answered(200 * time.Millisecond); {
		if time.Now().After(deadline) {
			t.Fatalf("no answer 5 s after the reload turned answers on:\n%s", e.logs.String())
		}
	}

	e.setConfig(func(c *config.Config) { c.Warewulf.AnswerRouterSolicitations = &no })
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	e.awaitLog(t, "router solicitation answers stopped (warewulf: answer router solicitations changed)")
	// An answer to an earlier solicitation may still be on its way.
	for deadline := time.Now().Add(3 * time.Second); answered(time.Second); {
		if time.Now().After(deadline) {
			t.Fatal("still answering after the reload turned answers off")
		}
	}
}

// waitLinkLocal waits up to 5 s for dev in namespace ns to hold a usable
// (not tentative) link-local address.
func waitLinkLocal(t *testing.T, ns, dev string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out, _ := exec.Command("ip", "-n", ns, "-6", "addr", "show", "dev", dev, "scope", "link").CombinedOutput()
		if strings.Contains(string(out), "inet6 fe80") && !strings.Contains(string(out), "tentative") {
			return
		}
		if time.Now().After(deadline) {
			testenv.Need(t, fmt.Sprintf("%s in %s has no IPv6 link-local address after 5 s:\n%s", dev, ns, out), false)
		}
	}
}

// A new listen address moves HTTP and TFTP together.
func TestReloadMovesListenAddress(t *testing.T) {
	want, err := os.ReadFile("/usr/lib/ipxe/undionly.kpxe")
	testenv.Need(t, "needs /usr/lib/ipxe/undionly.kpxe (Debian ipxe)", err == nil)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tftpPort := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), confAddr: true, tftp: true, tftpPort: tftpPort})
	oldHTTP, oldTFTP := e.srv.HTTPAddr().String(), e.srv.TFTPAddr().String()
	if oldTFTP != "127.0.0.1:"+itoa(tftpPort) {
		t.Fatalf("tftp on %s, want port %d of the listen address", oldTFTP, tftpPort)
	}

	e.setConfig(func(c *config.Config) { c.Warewulf.ListenAddress = "127.0.0.2" })
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	newHTTP, newTFTP := strings.Replace(oldHTTP, "127.0.0.1", "127.0.0.2", 1), strings.Replace(oldTFTP, "127.0.0.1", "127.0.0.2", 1)
	e.awaitLog(t, "http moved from "+oldHTTP+" to "+newHTTP)
	e.awaitLog(t, "tftp moved from "+oldTFTP+" to "+newTFTP)
	if body := httpGet(t, "http://"+newHTTP+"/ipxe/52:54:00:00:00:01"); !strings.Contains(body, "booting n1") {
		t.Fatalf("http on the new address: %s", body)
	}
	expectRefused(t, oldHTTP)
	var got bytes.Buffer
	if err := tftpGet(newTFTP, "undionly.kpxe", 1468, &got, 2*time.Second); err != nil || !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("tftp on the new address: %v, %d of %d bytes", err, got.Len(), len(want))
	}
	if err := tftpGet(oldTFTP, "undionly.kpxe", 0, io.Discard, 300*time.Millisecond); err == nil {
		t.Fatal("tftp still answers on the old address")
	}
}

// TestReloadKeepsNodes: a nodes.conf emptied, deleted or cut short while
// warewulfd serves its nodes is refused like any broken file: the nodes
// keep their iPXE scripts and overlays, and the log says why. A complete
// file that removes a node is taken.
func TestReloadKeepsNodes(t *testing.T) {
	conf := `nodes:
  n1:
    image name: img
    network devices:
      default: {hwaddr: "52:54:00:00:00:01", ipaddr: 10.1.0.1}
  n2:
    image name: img
    network devices:
      default: {hwaddr: "52:54:00:00:00:02", ipaddr: 10.1.0.2}
`
	e := newEnv(t, envOptions{nodesConf: conf})
	e.nodeOverlay("n2", "system", 1000)
	path := e.cfg.NodesConf()
	known := func(what string) {
		t.Helper()
		time.Sleep(300 * time.Millisecond) // three polls
		if _, body := e.get("/ipxe/52:54:00:00:00:02"); strings.Contains(string(body), "not in nodes.conf") {
			t.Errorf("%s: n2 is no longer known:\n%s", what, body)
		}
		if resp, _ := e.get("/system/52:54:00:00:00:02"); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: system overlay of n2: %s", what, resp.Status)
		}
	}
	writeFile(t, path, nil)
	known("emptied")
	e.awaitLog(t, "level=error", "reload failed", "has no nodes")
	os.Remove(path)
	known("deleted")
	e.awaitLog(t, "level=error", "reload failed", "is missing")
	writeFile(t, path, []byte(conf[:strings.Index(conf, "  n2:")+5]))
	known("cut after n2's name")
	writeFile(t, path, []byte(conf[:strings.Index(conf, "  n2:")-1]))
	known("cut before n2")
	e.awaitLog(t, "level=error", "reload failed", "looks cut short", "does not end with a newline")
	if strings.Contains(e.logs.String(), "loaded 0 nodes") || strings.Contains(e.logs.String(), "loaded 1 nodes") {
		t.Errorf("a broken nodes.conf was loaded:\n%s", e.logs.String())
	}
	// wwctl node delete n2: a complete file with one node less.
	writeFile(t, path, []byte(conf[:strings.Index(conf, "  n2:")]))
	e.awaitLog(t, "loaded 1 nodes")
	if _, body := e.get("/ipxe/52:54:00:00:00:02"); !strings.Contains(string(body), "not in nodes.conf") {
		t.Errorf("n2 was deleted, but its iPXE script is:\n%s", body)
	}
}
