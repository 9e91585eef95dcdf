package overlay

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// expect checks what a shipped overlay renders for node n1 of sampleDB.
// Every file a template writes is listed with strings it must contain.
var expect = map[string]map[string][]string{
	"hostname": {"etc/hostname": {"n1\n"}},
	"hosts": {"etc/hosts": {"127.0.0.1", "10.0.0.1   ctl.cluster warewulf", "10.0.1.1   n1 n1.alpha", "10.1.1.1   n1-ib",
		"10.0.1.2   n2\n", "10.0.1.3   n3"}},
	"resolv": {"etc/resolv.conf": {"search alpha.cluster", "nameserver 10.0.0.53\nnameserver 10.0.0.54"}},
	"issue":  {"etc/issue": {"n1 (cluster alpha), image rocky", "from ctl.cluster"}},
	"fstab":  {"etc/fstab": {"10.0.0.1:/home /home nfs rw,vers=4 0 0", "tmpfs /scratch tmpfs size=1g 0 0"}},
	"netname": {
		"etc/systemd/network/10-warewulf-eth0.link": {"MACAddress=52:54:00:00:00:01", "Name=eth0", "MTUBytes=9000"},
		"etc/udev/rules.d/70-persistent-net.rules":  {`ATTR{address}=="52:54:00:00:00:01", NAME="eth0"`},
	},
	"systemd.netname": {"etc/systemd/network/10-warewulf-eth0.link": {"MACAddress=52:54:00:00:00:01", "Name=eth0", "MTUBytes=9000"}},
	"udev.netname":    {"etc/udev/rules.d/70-persistent-net.rules": {`ATTR{address}=="52:54:00:00:00:01", NAME="eth0"`}},
	"systemd.networkd": {
		"etc/systemd/network/20-warewulf-eth0.network": {"PermanentMACAddress=52:54:00:00:00:01", "Address=10.0.1.1/24", "Gateway=10.0.0.1", "MTUBytes=9000"},
		"etc/systemd/network/20-warewulf-ib0.network":  {"Name=ib0", "Address=10.1.1.1/16", "Address=fd00::1/64"},
	},
	"NetworkManager": {
		"etc/NetworkManager/system-connections/warewulf-eth0.nmconnection": {"type=ethernet", "interface-name=eth0", "mac-address=52:54:00:00:00:01", "address1=10.0.1.1/24,10.0.0.1", "mtu=9000"},
		"etc/NetworkManager/system-connections/warewulf-ib0.nmconnection":  {"type=infiniband", "address1=10.1.1.1/16", "[ipv6]\nmethod=manual\naddress1=fd00::1/64"},
	},
	"ifcfg": {
		"etc/sysconfig/network-scripts/ifcfg-eth0": {"DEVICE=eth0", "HWADDR=52:54:00:00:00:01", "BOOTPROTO=static", "IPADDR=10.0.1.1", "NETMASK=255.255.255.0", "GATEWAY=10.0.0.1", "MTU=9000"},
		"etc/sysconfig/network-scripts/ifcfg-ib0":  {"TYPE=InfiniBand", "IPADDR=10.1.1.1", "NETMASK=255.255.0.0", "IPV6ADDR=fd00::1/64"},
	},
	"ifupdown": {"etc/network/interfaces.d/warewulf": {"auto eth0\niface eth0 inet static\n    address 10.0.1.1/24\n    gateway 10.0.0.1\n    hwaddress ether 52:54:00:00:00:01\n    mtu 9000",
		"iface ib0 inet static\n    address 10.1.1.1/16", "iface ib0 inet6 static\n    address fd00::1/64"}},
	"ssh.host_keys": {
		"etc/ssh/ssh_host_ed25519_key":     {"-----BEGIN OPENSSH PRIVATE KEY-----"},
		"etc/ssh/ssh_host_ed25519_key.pub": {"ssh-ed25519 ", " root@n1\n"},
		"etc/ssh/ssh_host_ecdsa_key":       {"-----BEGIN OPENSSH PRIVATE KEY-----"},
		"etc/ssh/ssh_host_ecdsa_key.pub":   {"ecdsa-sha2-nistp256 "},
	},
	"ssh.known_hosts":     {"etc/ssh/ssh_known_hosts": {"\nn1,n1.alpha,10.0.1.1,n1-ib,10.1.1.1,fd00::1 ssh-ed25519 ", "\nn2,10.0.1.2 ecdsa-sha2-nistp256 ", " root@n3\n"}},
	"ssh.authorized_keys": {"root/.ssh/authorized_keys": {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClusterKey warewulf@ctl\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOne root@ctl\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABExampleKeyTwo root@ctl\n"}},
	// The disk overlays (disks_test.go tests them with disks): n1 has none,
	// so their scripts do nothing and their unit templates write nothing.
	"sfdisk":        {"warewulf/init.d/10-sfdisk": {"#!/bin/sh\n"}},
	"mkfs":          {"warewulf/init.d/20-mkfs": {"#!/bin/sh\n"}},
	"mkswap":        {"warewulf/init.d/20-mkswap": {"#!/bin/sh\n"}},
	"systemd.mount": {"warewulf/init.d/30-mount": {"#!/bin/sh\n"}},
	"systemd.swap":  {"warewulf/init.d/30-swapon": {"#!/bin/sh\n"}},
	"ignition":      {},
	"syncuser": {
		"etc/passwd": {"root:x:0:0:root:/root:/bin/bash\nsshd:x:74:74::/var/empty/sshd:/sbin/nologin\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n"},
		"etc/group":  {"root:x:0:\nshadow:x:42:\nsshd:x:74:\nalice:x:1000:\n"},
		"etc/shadow": {"root:!:19000::::::\nsshd:!!:19000::::::\nalice:$y$hash:19000:0:99999:7:::\n"},
	},
}

// modes are the permission bits and owners some outputs must have.
var expectMode = map[string][3]uint32{
	"etc/ssh/ssh_host_ed25519_key":                                     {0o600, 0, 0},
	"etc/ssh/ssh_host_ed25519_key.pub":                                 {0o644, 0, 0},
	"etc/NetworkManager/system-connections/warewulf-eth0.nmconnection": {0o600, 0, 0},
	"root/.ssh/authorized_keys":                                        {0o600, 0, 0},
	"etc/shadow":                                                       {0o640, 0, 42},
	"etc/hostname":                                                     {0o644, 0, 0},
}

// TestShippedOverlaysRender renders every template of every shipped
// overlay for n1 and checks the overlays this package ships.
func TestShippedOverlaysRender(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := sampleDB(t)
	for _, name := range shippedOverlays(t) {
		t.Run(name, func(t *testing.T) {
			ov, err := Find(sb.cfg, name)
			if err != nil {
				t.Fatal(err)
			}
			entries, err := Scan(ov)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]Rendered{}
			for _, e := range entries {
				if !e.Template {
					continue
				}
				outs, err := b.Render(db, name, e.Path, "n1")
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range outs {
					got[o.Path] = o
					if bytes.Contains(o.Data, []byte("<no value>")) {
						t.Errorf("%s renders a missing value:\n%s", o.Path, o.Data)
					}
					if bytes.HasPrefix(o.Data, []byte("\n")) || bytes.HasSuffix(o.Data, []byte("\n\n\n")) {
						t.Errorf("%s has stray blank lines:\n%q", o.Path, o.Data)
					}
				}
			}
			want, ok := expect[name]
			if !ok {
				if strings.HasPrefix(name, "ww") {
					for p, o := range got {
						if len(o.Data) == 0 && o.Link == "" {
							t.Errorf("%s: %s is empty", name, p)
						}
					}
					t.Logf("overlay %s rendered %d files; its content is tested by its owner", name, len(got))
					return
				}
				t.Fatalf("shipped overlay %s has no expectations in render_test.go", name)
			}
			for file, subs := range want {
				o, ok := got[file]
				if !ok {
					t.Fatalf("%s was not rendered; got %v", file, keys(got))
				}
				for _, s := range subs {
					if !strings.Contains(string(o.Data), s) {
						t.Errorf("%s lacks %q:\n%s", file, s, o.Data)
					}
				}
				if m, ok := expectMode[file]; ok && (o.Mode != m[0] || o.UID != m[1] || o.GID != m[2]) {
					t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", file, o.Mode, o.UID, o.GID, m[0], m[1], m[2])
				}
			}
			if len(got) != len(want) {
				t.Errorf("rendered %v, want %d files", keys(got), len(want))
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestResolvFallsBackToController: without a dns tag, a node uses the
// controller's resolvers minus its loopback stub.
func TestResolvFallsBackToController(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	outs, err := b.Render(sampleDB(t), "resolv", "etc/resolv.conf.ww", "n2")
	if err != nil {
		t.Fatal(err)
	}
	got := string(outs[0].Data)
	if !strings.Contains(got, "nameserver 10.0.0.254") || strings.Contains(got, "127.0.0.53") {
		t.Fatalf("resolv.conf for n2:\n%s", got)
	}
}

// TestHostKeysStable: a node's host keys are made once and kept.
func TestHostKeysStable(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := sampleDB(t)
	render := func() string {
		outs, err := b.Render(db, "ssh.host_keys", "etc/ssh/ssh_host_keys.ww", "n1")
		if err != nil {
			t.Fatal(err)
		}
		return string(outs[0].Data) + string(outs[1].Data)
	}
	first := render()
	if first != render() {
		t.Fatal("host keys changed between renders")
	}
	file := HostKeysFile(sb.cfg)
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v %v", file, st, err)
	}
	if !strings.HasPrefix(file, sb.cfg.KeyDir()) {
		t.Fatalf("key %s is not under %s", file, sb.cfg.KeyDir())
	}
	// A new process reads the same keys back.
	b = NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	if first != render() {
		t.Fatal("host keys changed in a new process")
	}
}

// TestNetworkdBondVLAN: two NICs in a bond, a VLAN on the bond with the
// address, a static route and DNS from the VLAN's tags.
func TestNetworkdBondVLAN(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := sampleDB(t)
	onboot := true
	db.Nodes["n1"].NetDevs = map[string]*node.NetDev{
		"nic1":  {Device: "ens3", Hwaddr: "52:54:00:00:01:01", Tags: map[string]string{"master": "bond0"}},
		"nic2":  {Device: "ens4", Hwaddr: "52:54:00:00:01:02", Tags: map[string]string{"master": "bond0"}},
		"bond0": {Device: "bond0", Type: "bond", OnBoot: node.WWbool(strconv.FormatBool(onboot)), MTU: "9000", Tags: map[string]string{"mode": "802.3ad", "miimon": "50", "xmit_hash_policy": "layer3+4"}},
		"v42": {Device: "bond0.42", Type: "vlan", Ipaddr: "10.42.0.5", Netmask: "255.255.255.0", Gateway: "10.42.0.1",
			Ipaddr6: "fd42::5", Prefixlen6: "64",
			Tags: map[string]string{"vlan_id": "42", "parent_device": "bond0", "route1": "10.99.0.0/16,10.42.0.254", "DNS1": "10.42.0.53", "DNS2": "10.42.0.54", "DNSSEARCH": "a.example,b.example"}},
	}
	db.Nodes["n1"].PrimaryNetwork = "v42"
	for _, p := range db.Profiles {
		p.NetDevs = nil
	}
	want := map[string][]string{
		"etc/systemd/network/20-warewulf-ens3.network":     {"[Match]\nPermanentMACAddress=52:54:00:00:01:01\n", "[Network]\nBond=bond0\n"},
		"etc/systemd/network/20-warewulf-ens4.network":     {"PermanentMACAddress=52:54:00:00:01:02", "Bond=bond0"},
		"etc/systemd/network/10-warewulf-bond0.netdev":     {"[NetDev]\nName=bond0\nKind=bond\nMTUBytes=9000\n", "[Bond]\nMode=802.3ad\nMIIMonitorSec=50ms\nTransmitHashPolicy=layer3+4\n"},
		"etc/systemd/network/20-warewulf-bond0.network":    {"[Match]\nName=bond0\n", "VLAN=bond0.42\nLinkLocalAddressing=no\n"},
		"etc/systemd/network/10-warewulf-bond0.42.netdev":  {"Name=bond0.42\nKind=vlan\n", "[VLAN]\nId=42\n"},
		"etc/systemd/network/20-warewulf-bond0.42.network": {"Name=bond0.42", "Address=10.42.0.5/24\nGateway=10.42.0.1\nAddress=fd42::5/64\n", "DNS=10.42.0.53\nDNS=10.42.0.54\nDomains=a.example b.example\n", "[Route]\nDestination=10.99.0.0/16\nGateway=10.42.0.254\n"},
	}
	outs, err := b.Render(db, "systemd.networkd", "etc/systemd/network/20-warewulf.network.ww", "n1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range outs {
		got[o.Path] = string(o.Data)
	}
	for p, subs := range want {
		for _, sub := range subs {
			if !strings.Contains(got[p], sub) {
				t.Errorf("%s lacks %q:\n%s", p, sub, got[p])
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("wrote %d files, want %d: %v", len(got), len(want), got)
	}
	if strings.Contains(got["etc/systemd/network/20-warewulf-bond0.network"], "DHCP") {
		t.Error("the bond under the VLAN asks for DHCP")
	}
}
