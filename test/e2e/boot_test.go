package e2e

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Timeouts under TCG on 2 shared cores: a busybox node boots in about
// 10-30 s, OVMF adds about 30 s, Debian with systemd takes longer.
const (
	busyboxBoot = 3 * time.Minute
	uefiBoot    = 4 * time.Minute
	debianBoot  = 6 * time.Minute
)

// TestBootBIOS: a legacy BIOS node boots from the NIC's iPXE ROM, gets its
// address from warewulfd's built-in DHCP server, loads kernel, image,
// kmods and system overlay over HTTP, runs wwinit, and its wwclient applies
// the runtime overlay from a privileged port. A change made on the
// controller then reaches the running node within one update interval.
func TestBootBIOS(t *testing.T) {
	e := getEnv(t)
	n := clusterNode("n1")
	v := bootVM(t, e.ns, n.name, n.mac, vmOpts{})
	v.bootTimes(t, "bios-busybox", busyboxBoot)
	v.waitFor(t, regexp.MustCompile(`network: eth0 .*`+regexp.QuoteMeta(n.ip)), time.Second)
	e.daemonSaid(t, `dhcp: ACK `+regexp.QuoteMeta(n.ip)+` to `+n.mac)
	// iPXE's IPv6 router solicitation got warewulfd's answer (without it
	// iPXE waits about 16 s for a router).
	e.daemonSaid(t, `ndp: answered the router solicitation of `+regexp.QuoteMeta(linkLocal(t, n.mac))+` on br0`)
	for _, stage := range []string{"ipxe", "kernel", "image", "kmods", "system", "runtime"} {
		e.daemonSaid(t, `hwaddr="`+n.mac+`" ip=`+regexp.QuoteMeta(n.ip)+` node=n1 stage=`+stage+` status=200`)
	}

	// The runtime overlay's file, rendered for this node, is in place.
	from := v.p.out.len()
	e.setTag(t, n.name, "marker", "v2")
	changedAt := time.Now()
	e.buildOverlays(t, n.name)
	at := v.waitAfter(t, regexp.MustCompile(`changed: .*/etc/e2e-marker`), from, 4*updateInterval*time.Second)
	lag := at.Sub(changedAt)
	t.Logf("a change on the controller reached n1 after %.1fs (update interval %ds)", lag.Seconds(), updateInterval)
	fmt.Printf("RUNTIME-LAG node=n1 %.1fs interval=%ds\n", lag.Seconds(), updateInterval)
	// One interval, plus the 2 s warewulfd may reuse a lookup of built
	// files, plus a second for the build and the VM's clock.
	if limit := time.Duration(updateInterval+3) * time.Second; lag > limit {
		t.Errorf("the change took %v, more than one update interval (%ds) plus warewulfd's 2 s lookup cache", lag, updateInterval)
	}

	// A runtime request for n1 from another address of the network, even
	// from a privileged port, is refused; n1 itself keeps getting it.
	t.Run("WrongAddressRefused", func(t *testing.T) {
		e.refusedFrom(t, n, prefix+"200", true)
		e.refusedFrom(t, n, controllerIP, false)
		if v.p.exited() {
			t.Fatal("n1 stopped")
		}
	})
}

// refusedFrom asks warewulfd for node n's runtime overlay from address ip
// of the namespace (added to the bridge for the request), with wwclient
// itself, and expects a 403.
func (e *env) refusedFrom(t *testing.T, n testNode, ip string, privileged bool) {
	t.Helper()
	if ip != controllerIP {
		run(t, nil, e.ns.exec("ip", "addr", "add", ip+"/24", "dev", e.ns.bridge)...)
		defer runErr(nil, e.ns.exec("ip", "addr", "del", ip+"/24", "dev", e.ns.bridge)...)
	}
	dir := t.TempDir()
	secure := "true"
	if !privileged {
		secure = "false"
	}
	writeFile(t, dir+"/config", fmt.Sprintf("controller: %s\nport: %d\nhwaddr: %s\nsecure: %s\n",
		controllerIP, e.cfg.Warewulf.Port, n.mac, secure), 0o600)
	argv := e.ns.exec(e.tool("wwclient"), "--once", "--config", dir+"/config", "--root", dir+"/root", "--source", ip)
	out, err := runErr(nil, argv...)
	if err == nil {
		t.Fatalf("runtime overlay of %s served to %s (privileged port %v):\n%s", n.name, ip, privileged, out)
	}
	if !strings.Contains(out, "403") {
		t.Fatalf("want 403 for %s from %s, got: %v\n%s", n.name, ip, err, out)
	}
	t.Logf("refused as expected from %s (privileged port %v): %s", ip, privileged, strings.TrimSpace(out))
}

// TestBootUEFI: an x86_64 UEFI node under OVMF with the NIC's option ROM
// disabled: the firmware's own PXE client gets the EFI iPXE binary over
// warewulfd's TFTP, and iPXE continues over HTTP. This node also runs from
// a tmpfs root (`root: tmpfs`).
func TestBootUEFI(t *testing.T) {
	e := getEnv(t)
	n := clusterNode("n2")
	v := bootVM(t, e.ns, n.name, n.mac, vmOpts{uefi: true})
	v.bootTimes(t, "uefi-busybox", uefiBoot)
	v.waitFor(t, regexp.MustCompile(`NBP filename is ipxe-snponly-x86_64\.efi`), time.Second)
	// n2 has `root: tmpfs`: wwinit moved the root into a tmpfs first.
	v.waitFor(t, regexp.MustCompile(`wwinit: copying the root file system into a tmpfs`), time.Second)
	v.waitFor(t, regexp.MustCompile(`wwinit: node n2 root tmpfs`), time.Second)
	e.daemonSaid(t, `tftp: served.* file=ipxe-snponly-x86_64\.efi peer=`+regexp.QuoteMeta(n.ip))
	e.daemonSaid(t, `dhcp: ACK `+regexp.QuoteMeta(n.ip)+` to `+n.mac)
}

// linkLocal is the IPv6 link-local address iPXE makes from a MAC (EUI-64).
func linkLocal(t testing.TB, mac string) string {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		t.Fatalf("bad MAC %q", mac)
	}
	ip := net.IP{0xfe, 0x80, 0, 0, 0, 0, 0, 0, hw[0] ^ 2, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]}
	return ip.String()
}

// daemonSaid checks that warewulfd logged a line matching re.
func (e *env) daemonSaid(t testing.TB, re string) {
	t.Helper()
	if _, _, ok := e.wwd.out.waitFor(regexp.MustCompile(re), 0, 2*time.Second, nil); !ok {
		t.Errorf("warewulfd logged no line matching %q", re)
	}
}

// TestBootThreeAtOnce: three nodes power on together.
func TestBootThreeAtOnce(t *testing.T) {
	e := getEnv(t)
	var vms []*vm
	for _, name := range []string{"n3", "n4", "n5"} {
		n := clusterNode(name)
		vms = append(vms, bootVM(t, e.ns, n.name, n.mac, vmOpts{}))
	}
	var wg sync.WaitGroup
	for _, v := range vms {
		wg.Add(1)
		go func(v *vm) {
			defer wg.Done()
			init, ok1 := v.wait(reInit, busyboxBoot)
			rt, ok2 := v.wait(reRuntime, busyboxBoot)
			if !ok1 || !ok2 {
				t.Errorf("%s did not boot:\n%s", v.name, v.p.out.tail(30))
				return
			}
			recordTime(t, "bios-busybox-3-at-once", v.name, init, rt)
		}(v)
	}
	wg.Wait()
}

// wait is waitFor without failing (for use in goroutines).
func (v *vm) wait(re *regexp.Regexp, timeout time.Duration) (time.Duration, bool) {
	_, at, ok := v.p.out.waitFor(re, 0, timeout, v.p.done)
	return at.Sub(v.powerOn), ok
}
