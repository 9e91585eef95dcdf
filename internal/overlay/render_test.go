package overlay

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// expect checks what a shipped overlay renders for node n1 of sampleDB.
// Every file a template writes is listed with strings it must contain.
var expect = map[string]map[string][]string{
	"hostname": {"etc/hostname": {"n1\n"}},
	"hosts": {"etc/hosts": {"127.0.0.1", "10.0.0.1   ctl.cluster warewulf", "10.0.1.1   n1 n1.alpha n1-default n1-eth0\n", "10.1.1.1   n1-ib n1-ib0\n", "fd00::1   n1-ib n1-ib0\n",
		"10.0.1.2   n2 n2-default n2-eth0\n", "10.0.1.3   n3"}},
	"resolv": {"etc/resolv.conf": {"search alpha.cluster", "nameserver 10.0.0.53\nnameserver 10.0.0.54"}},
	"issue":  {"etc/issue": {"n1 (cluster alpha), image rocky", "from ctl.cluster"}},
	"fstab":  {"etc/fstab": {"10.0.0.1:/home /home nfs rw,vers=4 0 0", "tmpfs /scratch tmpfs size=1g 0 0"}},
	"netname": {
		"etc/systemd/network/10-warewulf-eth0.link": {"MACAddress=52:54:00:00:00:01", "Name=eth0", "MTUBytes=9000"},
		"etc/udev/rules.d/70-persistent-net.rules":  {`ATTR{address}=="52:54:00:00:00:01", NAME="eth0"`},
	},
	"localtime":       {"etc/localtime": {}},
	"mig":             {"etc/systemd/system/ww-nvidia-mig.service": {"ExecStart=/usr/bin/nvidia-smi mig -cgi 2,2 -C\n", "WantedBy=multi-user.target"}},
	"netplan":         {"etc/netplan/warewulf.yaml": {"network:\n  version: 2\n", "  ethernets:\n    eth0:\n      match:\n        macaddress: \"52:54:00:00:00:01\"\n      set-name: eth0\n      mtu: 9000\n      dhcp4: false\n      addresses:\n        - 10.0.1.1/24\n      routes:\n        - { to: default, via: 10.0.0.1 }\n", "    ib0:\n      infiniband-mode: datagram\n"}},
	"wicked":          {"etc/wicked/ifconfig/eth0.xml": {"<name>eth0</name>", "<local>10.0.1.1/24</local>", "<mtu>9000</mtu>"}, "etc/wicked/ifconfig/ib0.xml": {"<infiniband>", "<local>fd00::1/64</local>"}},
	"chrony":          {"etc/chrony.conf": {"server 10.0.0.1 iburst\n", "allow 10.0.0.0/16\n"}},
	"debug":           {"tstruct.md": {"# Template data for n1", "- NetDevs[default]: type ethernet, device eth0, hwaddr 52:54:00:00:00:01", "primary true", "- n3\n"}},
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
	"ssh.known_hosts":     {"etc/ssh/ssh_known_hosts": {"\nn1,n1.alpha,n1-default,n1-eth0,10.0.1.1,n1-ib,n1-ib0,10.1.1.1,fd00::1 ssh-ed25519 ", "\nn2,n2-default,n2-eth0,10.0.1.2 ecdsa-sha2-nistp256 ", " root@n3\n"}},
	"ssh.authorized_keys": {"root/.ssh/authorized_keys": {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClusterKey warewulf@ctl\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOne root@ctl\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABExampleKeyTwo root@ctl\n"}},
	// The disk overlays (disks_test.go tests them with disks): n1 has none,
	// so their scripts do nothing and their unit templates write nothing.
	"sfdisk":        {"warewulf/wwinit.d/10-sfdisk.sh": {"#!/bin/sh\n"}},
	"mkfs":          {"warewulf/wwinit.d/20-mkfs.sh": {"#!/bin/sh\n"}},
	"mkswap":        {"warewulf/wwinit.d/20-mkswap.sh": {"#!/bin/sh\n"}},
	"systemd.mount": {"warewulf/init.d/30-mount": {"#!/bin/sh\n"}},
	"systemd.swap":  {"warewulf/init.d/30-swapon": {"#!/bin/sh\n"}},
	"ignition":      {},
	// The controller's files (internal/controller renders them for the
	// controller; the compat corpus checks upstream's exact output).
	"host": {
		"etc/hosts": {"# Do not edit after this line\n# This block is autogenerated by warewulf\n", "\n# Entry for n1\n10.0.1.1 n1 n1.alpha n1-default n1-eth0\n"},
		"etc/dhcp/dhcpd.conf": {"option architecture-type   code 93  = unsigned integer 16;\n", "\nif exists user-class and option user-class = \"iPXE\" {\n  # ipxe\n  filename \"http://10.0.0.1:9873/ipxe/${mac}?assetkey=${asset:uristring}\";\n}\n",
			"\nelsif option architecture-type = 00:00 {\n  # pxe-0\n  filename \"undionly.kpxe\";\n}\n"},
		"etc/dnsmasq.d/ww4-hosts.conf":  {"dhcp-boot=tag:uc-iPXE,http://10.0.0.1:9873/ipxe/${mac}?assetkey=${asset:uristring}\n", "dhcp-boot=tag:arch-0,tag:!uc-iPXE,undionly.kpxe,,10.0.0.1\n"},
		"etc/dnsmasq.d/ww4-listen.conf": {"\nlisten-address=10.0.0.1\n"},
		"etc/exports":                   {"# This file is autogenerated by warewulf\n/home 10.0.0.0/255.255.0.0(ro,sync,no_subtree_check)\n"},
		"etc/profile.d/ssh_setup.sh":    {"ssh-keygen -q -t ed25519 "},
		"etc/profile.d/ssh_setup.csh":   {"ssh-keygen -q -t ed25519 "},
	},
	"ipmi.password": {}, // n1 has no ipmi write
	"syncuser": {
		"etc/passwd": {"root:x:0:0:root:/root:/bin/bash\nsshd:x:74:74::/var/empty/sshd:/sbin/nologin\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n"},
		"etc/group":  {"root:x:0:\nshadow:x:42:\nsshd:x:74:\nalice:x:1000:\n"},
		"etc/shadow": {"root:!:19000::::::\nsshd:!!:19000::::::\nalice:$y$hash:19000:0:99999:7:::\n"},
	},
}

// expectLink are the outputs that are symlinks, and their targets.
var expectLink = map[string]string{"etc/localtime": "/usr/share/zoneinfo/Europe/Berlin"}

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
	db := sampleDB(t)
	for _, name := range shippedOverlays(t) {
		t.Run(name, func(t *testing.T) {
			got := renderAllFor(t, sb, db, name, "n1")
			for _, o := range got {
				if bytes.Contains(o.Data, []byte("<no value>")) {
					t.Errorf("%s renders a missing value:\n%s", o.Path, o.Data)
				}
				if bytes.HasPrefix(o.Data, []byte("\n")) || bytes.HasSuffix(o.Data, []byte("\n\n\n")) {
					t.Errorf("%s has stray blank lines:\n%q", o.Path, o.Data)
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
				if l, ok := expectLink[file]; ok && o.Link != l {
					t.Errorf("%s: a link to %q, want %q", file, o.Link, l)
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
	db := bondVLANDB(t)
	want := map[string][]string{
		"etc/systemd/network/20-warewulf-ens3.network":     {"[Match]\nName=ens3\nPermanentMACAddress=52:54:00:00:01:01\n", "[Network]\nBond=bond0\n"},
		"etc/systemd/network/20-warewulf-ens4.network":     {"PermanentMACAddress=52:54:00:00:01:02", "Bond=bond0"},
		"etc/systemd/network/10-warewulf-bond0.netdev":     {"[NetDev]\nName=bond0\nKind=bond\nMTUBytes=9000\n", "[Bond]\nMode=802.3ad\nMIIMonitorSec=50ms\nTransmitHashPolicy=layer3+4\n"},
		"etc/systemd/network/20-warewulf-bond0.network":    {"[Match]\nName=bond0\n", "VLAN=bond0.42\nLinkLocalAddressing=no\n"},
		"etc/systemd/network/10-warewulf-bond0.42.netdev":  {"Name=bond0.42\nKind=vlan\n", "[VLAN]\nId=42\n"},
		"etc/systemd/network/20-warewulf-bond0.42.network": {"Name=bond0.42", "Address=10.42.0.5/24\nGateway=10.42.0.1\nAddress=fd42::5/64\n", "DNS=10.42.0.53\nDNS=10.42.0.54\nDomains=a.example b.example\n", "[Route]\nDestination=10.99.0.0/16\nGateway=10.42.0.254\n"},
	}
	got := renderAllOf(t, b, db, "systemd.networkd", "etc/systemd/network/20-warewulf.network.ww")
	checkFiles(t, got, want, true)
	if strings.Contains(got["etc/systemd/network/20-warewulf-bond0.network"], "DHCP") {
		t.Error("the bond under the VLAN asks for DHCP")
	}
}

// TestNetworkOverlaysBondVLAN: the same network through NetworkManager,
// ifcfg and ifupdown.
func TestNetworkOverlaysBondVLAN(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := bondVLANDB(t)
	nm := "etc/NetworkManager/system-connections/warewulf-"
	checkFiles(t, renderAllOf(t, b, db, "NetworkManager", "etc/NetworkManager/system-connections/warewulf.nmconnection.ww"), map[string][]string{
		nm + "ens3.nmconnection":     {"type=ethernet\ninterface-name=ens3\n", "master=bond0\nslave-type=bond\n", "mac-address=52:54:00:00:01:01"},
		nm + "bond0.nmconnection":    {"type=bond\n", "[ipv4]\nmethod=disabled\n", "[bond]\nmode=802.3ad\nmiimon=50\nxmit_hash_policy=layer3+4\n", "mtu=9000"},
		nm + "bond0.42.nmconnection": {"type=vlan\n", "[vlan]\nid=42\nparent=bond0\n", "address1=10.42.0.5/24,10.42.0.1", "dns=10.42.0.53;10.42.0.54;", "dns-search=a.example;b.example;", "route1=10.99.0.0/16,10.42.0.254", "[ipv6]\nmethod=manual\naddress1=fd42::5/64"},
	}, false)
	sc := "etc/sysconfig/network-scripts/"
	checkFiles(t, renderAllOf(t, b, db, "ifcfg", sc+"ifcfg.ww"), map[string][]string{
		sc + "ifcfg-ens3":     {"MASTER=bond0\nSLAVE=yes\n", "HWADDR=52:54:00:00:01:01"},
		sc + "ifcfg-bond0":    {"TYPE=Bond", "BOOTPROTO=none", "BONDING_MASTER=yes", `BONDING_OPTS="mode=802.3ad miimon=50 xmit_hash_policy=layer3+4"`},
		sc + "ifcfg-bond0.42": {"VLAN=yes\nVLAN_ID=42\nPHYSDEV=bond0\n", "IPADDR=10.42.0.5", "DNS1=10.42.0.53\nDNS2=10.42.0.54\n", `DOMAIN="a.example b.example"`},
		sc + "route-bond0.42": {"10.99.0.0/16 via 10.42.0.254 dev bond0.42\n"},
	}, false)
	checkFiles(t, renderAllOf(t, b, db, "ifupdown", "etc/network/interfaces.d/warewulf.ww"), map[string][]string{
		"etc/network/interfaces.d/warewulf": {"iface ens3 inet manual\n    bond-master bond0\n", "iface bond0 inet manual\n    mtu 9000\n    bond-slaves ens3 ens4 \n    bond-mode 802.3ad\n",
			"iface bond0.42 inet static\n    address 10.42.0.5/24\n    gateway 10.42.0.1\n    vlan-raw-device bond0\n    dns-nameservers 10.42.0.53 10.42.0.54\n    dns-search a.example b.example\n    up ip route add 10.99.0.0/16 via 10.42.0.254 dev bond0.42\n"},
	}, false)
}

// TestNetplanWickedBondVLAN: the same network through netplan and wicked.
func TestNetplanWickedBondVLAN(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := bondVLANDB(t)
	np := renderAllOf(t, b, db, "netplan", "etc/netplan/warewulf.yaml.ww")
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(np["etc/netplan/warewulf.yaml"]), &doc); err != nil {
		t.Fatalf("netplan: not YAML: %v", err)
	}
	checkFiles(t, np, map[string][]string{
		"etc/netplan/warewulf.yaml": {"    ens3:\n      match:\n        macaddress: \"52:54:00:00:01:01\"\n      set-name: ens3\n      dhcp4: false\n      dhcp6: false\n",
			"  bonds:\n    bond0:\n      mtu: 9000\n      interfaces: [ens3, ens4]\n      parameters:\n        mode: 802.3ad\n        mii-monitor-interval: 50\n        transmit-hash-policy: layer3+4\n",
			"  vlans:\n    bond0.42:\n      id: 42\n      link: bond0\n      dhcp4: false\n      addresses:\n        - 10.42.0.5/24\n        - \"fd42::5/64\"\n      routes:\n        - { to: default, via: 10.42.0.1 }\n        - { to: 10.99.0.0/16, via: 10.42.0.254 }\n      nameservers:\n        addresses: [10.42.0.53, 10.42.0.54]\n        search: [a.example, b.example]\n"},
	}, true)
	w := "etc/wicked/ifconfig/"
	checkFiles(t, renderAllOf(t, b, db, "wicked", w+"warewulf.xml.ww"), map[string][]string{
		w + "ens3.xml":     {"<master>bond0</master>", "<address>52:54:00:00:01:01</address>"},
		w + "ens4.xml":     {"<master>bond0</master>"},
		w + "bond0.xml":    {"<mode>802.3ad</mode>", "<frequency>50</frequency>", "<slave><device>ens3</device></slave>\n      <slave><device>ens4</device></slave>"},
		w + "bond0.42.xml": {"<vlan>\n    <device>bond0</device>\n    <tag>42</tag>", "<local>10.42.0.5/24</local>", "<destination>10.99.0.0/16</destination>\n      <nexthop><gateway>10.42.0.254</gateway></nexthop>", "<local>fd42::5/64</local>"},
	}, true)
}

func renderAllOf(t *testing.T, b *Builder, db *node.DB, ov, file string) map[string]string {
	t.Helper()
	outs, err := b.Render(db, ov, file, "n1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range outs {
		got[o.Path] = string(o.Data)
	}
	return got
}

func checkFiles(t *testing.T, got map[string]string, want map[string][]string, exact bool) {
	t.Helper()
	for p, subs := range want {
		for _, sub := range subs {
			if !strings.Contains(got[p], sub) {
				t.Errorf("%s lacks %q:\n%s", p, sub, got[p])
			}
		}
	}
	if exact && len(got) != len(want) {
		t.Errorf("wrote %d files, want %d: %v", len(got), len(want), got)
	}
}

// bondVLANDB: n1 has two NICs in an 802.3ad bond and a VLAN on the bond
// with its addresses, a route and DNS.
func bondVLANDB(t *testing.T) *node.DB {
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
	return db
}

// TestSyncuserLocalUsers: upstream's PasswordlessRoot tag and the
// localusers and localgroups resources.
func TestSyncuserLocalUsers(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := sampleDB(t)
	n := db.Nodes["n1"]
	if n.Tags == nil {
		n.Tags = map[string]string{}
	}
	n.Tags["PasswordlessRoot"] = "true"
	n.Resources = map[string]any{
		"localusers":  []any{map[string]any{"name": "dbuser", "uid": 1001, "gid": 1002, "gecos": "DB", "home": "/var/lib/db", "shell": "/bin/sh"}, map[string]any{"name": "alice", "uid": 9, "gid": 9, "home": "/", "shell": "/bin/sh"}},
		"localgroups": []any{map[string]any{"name": "dbgroup", "gid": 1002, "members": []any{"dbuser", "alice"}}},
	}
	passwd := renderAllOf(t, b, db, "syncuser", "etc/passwd.ww")["etc/passwd"]
	group := renderAllOf(t, b, db, "syncuser", "etc/group.ww")["etc/group"]
	shadow := renderAllOf(t, b, db, "syncuser", "etc/shadow.ww")["etc/shadow"]
	for _, c := range []struct{ text, want string }{
		{passwd, "root::0:0:root:/root:/bin/bash\nsshd:x:74:74::/var/empty/sshd:/sbin/nologin\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\ndbuser:x:1001:1002:DB:/var/lib/db:/bin/sh\n"},
		{group, "root:x:0:\nshadow:x:42:\nsshd:x:74:\nalice:x:1000:\ndbuser:x:1002:\ndbgroup:x:1002:dbuser,alice\n"},
		{shadow, "root::::::::\nsshd:!!:19000::::::\nalice:$y$hash:19000:0:99999:7:::\n"},
	} {
		if c.text != c.want {
			t.Errorf("got\n%s\nwant\n%s", c.text, c.want)
		}
	}
}

// TestMigProfiles: the tag gpuMigProfiles, one list for all GPUs or one
// per GPU.
func TestMigProfiles(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	for tag, want := range map[string]string{
		"14,14,14,15":        "ExecStart=/usr/bin/nvidia-smi mig -cgi 14,14,14,15 -C\n",
		"14,15:9,9:0":        "ExecStart=/usr/bin/nvidia-smi mig -cgi 14,15 -i 0 -C\nExecStart=/usr/bin/nvidia-smi mig -cgi 9,9 -i 1 -C\nExecStart=/usr/bin/nvidia-smi mig -cgi 0 -i 2 -C\n",
		"1g.23gb+me,1g.23gb": "ExecStart=/usr/bin/nvidia-smi mig -cgi 1g.23gb+me,1g.23gb -C\n",
	} {
		db := sampleDB(t)
		db.Nodes["n1"].Tags = map[string]string{"gpuMigProfiles": tag}
		got := renderAllOf(t, b, db, "mig", "etc/systemd/system/ww-nvidia-mig.service.ww")["etc/systemd/system/ww-nvidia-mig.service"]
		if !strings.Contains(got, want) {
			t.Errorf("gpuMigProfiles %q:\n%s\nlacks\n%s", tag, got, want)
		}
	}
}

// TestKernelVersionFromImage: a node without a kernel version of its own
// has its image's newest kernel, as upstream; its own version wins.
func TestKernelVersionFromImage(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	writeFiles(t, sb.cfg.ImageRootfs("rocky"), map[string]string{"boot/vmlinuz-6.1.0-9-amd64": "k", "boot/vmlinuz-5.14.0-1": "k"})
	writeFiles(t, filepath.Join(sb.cfg.SiteOverlayDir(), "kv", "rootfs"), map[string]string{"kv.ww": "{{ .Kernel.Version }}|{{ .ThisNode.Kernel.Version }}"})
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := sampleDB(t)
	if got := renderAllOf(t, b, db, "kv", "kv.ww")["kv"]; got != "6.1.0-9-amd64|6.1.0-9-amd64" {
		t.Errorf("from the image: %q", got)
	}
	db = sampleDB(t) // a Builder takes a node.DB as immutable
	db.Nodes["n1"].Kernel = &node.Kernel{Version: "9.9"}
	if got := renderAllOf(t, b, db, "kv", "kv.ww")["kv"]; got != "9.9|9.9" {
		t.Errorf("the node's own: %q", got)
	}
}
