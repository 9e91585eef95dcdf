package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// TestBondVLANDebian: a systemd Debian node with two NICs gets, from the
// systemd.networkd overlay and nothing else, an active-backup bond of both
// NICs with an address, and a VLAN on the bond with an address, a static
// route and DNS servers from its tags. The controller's side of the test
// network (a VLAN interface on the namespace's bridge) pings the node on
// its VLAN address.
func TestBondVLANDebian(t *testing.T) {
	e := getEnv(t)
	e.importDebian(t)
	const (
		name   = "bond1"
		mac1   = "52:54:00:99:00:18"
		mac2   = "52:54:00:99:00:28"
		bondIP = prefix + "28"
		vlanIP = "10.42.0.18"
	)
	// The controller's end of VLAN 42, on the bridge the node's taps join.
	vlanEndpoint(t, e.ns, 42, "10.42.0.1/24")

	// A site overlay that turns systemd-networkd on (images choose their
	// network tool; the shipped overlay only writes its configuration).
	site := filepath.Join(e.cfg.SiteOverlayDir(), "networkd-on", "rootfs", "etc", "systemd", "system", "multi-user.target.wants")
	if err := os.MkdirAll(site, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(site, "systemd-networkd.service"))
	if err := os.Symlink("/lib/systemd/system/systemd-networkd.service", filepath.Join(site, "systemd-networkd.service")); err != nil {
		t.Fatal(err)
	}
	err := node.Update(e.cfg.NodesConf(), func(db *node.DB) error {
		db.Nodes[name] = &node.Conf{
			Profiles:       node.List{"default"},
			ImageName:      "debian",
			PrimaryNetwork: "default",
			// ifupdown would take the same interfaces.
			SystemOverlay: node.List{"~ifupdown", "networkd-on"},
			// no_timer_check: on a loaded machine TCG's timer is too slow for
			// the kernel's IO-APIC timer test, which then panics.
			Kernel: &node.Kernel{Args: node.Args{"systemd.show_status=1", "no_timer_check"}},
			NetDevs: map[string]*node.NetDev{
				// The first NIC boots the node (DHCP, iPXE) before it joins
				// the bond; "default" as the profile's device is named.
				"default": {Device: "eth0", Hwaddr: mac1, Ipaddr: prefix + "18", Netmask: netmask, Tags: map[string]string{"master": "bond0"}},
				"nic2":    {Device: "eth1", Hwaddr: mac2, Tags: map[string]string{"master": "bond0"}},
				"bond0": {Device: "bond0", Type: "bond", OnBoot: "true", Ipaddr: bondIP, Netmask: netmask,
					Tags: map[string]string{"mode": "active-backup", "miimon": "100"}},
				"v42": {Device: "bond0.42", Type: "vlan", Ipaddr: vlanIP, Netmask: netmask, Tags: map[string]string{
					"vlan_id": "42", "parent_device": "bond0", "route1": "10.77.0.0/16,10.42.0.1",
					"DNS1": "10.42.0.53", "DNS2": "10.42.0.54", "DNSSEARCH": "vlan.example"}},
			},
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		node.Update(e.cfg.NodesConf(), func(db *node.DB) error { delete(db.Nodes, name); return nil })
	})
	e.buildOverlays(t, name)
	// warewulfd picks nodes.conf up within a second or so: wait until it
	// hands bond1 its own iPXE script.
	url := "http://" + controllerIP + ":" + strconv.Itoa(e.cfg.Warewulf.Port) + "/ipxe/" + mac1
	for i := 0; ; i++ {
		out, _ := runErr(nil, e.ns.exec("busybox", "wget", "-q", "-O", "-", url)...)
		if strings.Contains(out, name) {
			break
		}
		if i == 30 {
			t.Fatalf("warewulfd does not know %s after 30 s: %s\n%s", name, out, e.wwd.out.tail(20))
		}
		time.Sleep(time.Second)
	}
	v := bootVM(t, e.ns, name, mac1, vmOpts{memory: "2048", moreNICs: []string{mac2}})
	v.waitFor(t, reInit, debianBoot)
	v.waitFor(t, regexp.MustCompile(`Reached target.*Multi-User System`), debianBoot)
	v.login(t, time.Minute)
	// networkd may still be configuring the links: wait for the VLAN's address.
	out := v.shell(t, "for i in $(seq 60); do ip -4 -o addr show dev bond0.42 | grep -q "+vlanIP+" && break; sleep 1; done; "+
		"cat /sys/class/net/bond0/bonding/mode; cat /sys/class/net/bond0/bonding/slaves; "+
		"ip -4 -o addr show dev bond0; ip -4 -o addr show dev bond0.42; ip -d -o link show dev bond0.42; "+
		"ip route show 10.77.0.0/16; cat /run/systemd/netif/links/$(cat /sys/class/net/bond0.42/ifindex)", 2*time.Minute)
	t.Logf("%s says:\n%s", name, out)
	got := lines(out)
	if len(got) < 2 || !strings.Contains(" "+got[1]+" ", " eth0 ") || !strings.Contains(" "+got[1]+" ", " eth1 ") {
		t.Errorf("bond0's members: %q, want eth0 and eth1", got)
	}
	for _, want := range []string{"active-backup 1", bondIP + "/24", vlanIP + "/24", "vlan protocol 802.1Q id 42",
		"10.77.0.0/16 via 10.42.0.1 dev bond0.42", "10.42.0.53", "10.42.0.54", "vlan.example"} {
		if !strings.Contains(out, want) {
			t.Errorf("%s lacks %q", name, want)
		}
	}
	// The controller's side reaches the node on its VLAN address.
	if out, err := runErr(nil, e.ns.exec("busybox", "ping", "-c", "3", "-W", "2", vlanIP)...); err != nil {
		t.Fatalf("ping %s from the controller's side: %v\n%s", vlanIP, err, out)
	}
}
