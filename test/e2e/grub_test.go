package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// The shim + GRUB boot path (`grubboot: true`) on real firmware: OVMF with
// Microsoft's keys enrolled and Secure Boot on, plain OVMF, and UEFI HTTP
// boot with TFTP off. Debian's signed shim and GRUB (shim-signed,
// grub-efi-amd64-signed) chain to the signed Debian kernel of the test
// images.

// Firmware files of Debian's ovmf package.
const (
	ovmfCodeMS = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd" // Secure Boot capable, Microsoft's keys in ...
	ovmfVarsMS = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd" // ... these variables
	hostShim   = "/usr/lib/shim/shimx64.efi.signed"
	hostGrub   = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"
)

// The GRUB test nodes: in nodes.conf beside the main cluster, booted from
// warewulfds of their own namespaces.
var grubNodes = []testNode{
	{"sb1", "52:54:00:99:00:31", prefix + "31", "busybox-sb"}, // Secure Boot on, the image's shim and GRUB
	{"sb2", "52:54:00:99:00:32", prefix + "32", "busybox-sb"}, // Secure Boot off, same image
	{"sb3", "52:54:00:99:00:33", prefix + "33", "busybox"},    // BIOS, iPXE, beside sb1
	{"sb4", "52:54:00:99:00:34", prefix + "34", "busybox"},    // UEFI HTTP boot, the controller's shim and GRUB
}

func grubNode(name string) testNode {
	for _, n := range grubNodes {
		if n.name == name {
			return n
		}
	}
	panic("no GRUB test node " + name)
}

var (
	grubOnce sync.Once
	grubErr  string
)

// grubSetup adds the GRUB nodes and the busybox-sb image: the busybox
// image with Debian's signed shim and GRUB installed where the packages
// put them, so warewulfd takes them from the image.
func (e *env) grubSetup(t *testing.T) {
	t.Helper()
	var missing []string
	for _, f := range []string{ovmfCodeMS, ovmfVarsMS, hostShim, hostGrub} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	testenv.Need(t, "the Secure Boot tests need "+strings.Join(missing, ", ")+" (test/deps.sh installs ovmf, shim-signed, grub-efi-amd64-signed)", len(missing) == 0)
	grubOnce.Do(func() {
		grubErr = "setting up the GRUB nodes failed (see the first GRUB test)"
		e.wwctl(t, "image", "copy", "busybox", "busybox-sb")
		root := e.cfg.ImageRootfs("busybox-sb")
		copyFile(t, hostShim, filepath.Join(root, "usr/lib/shim/shimx64.efi.signed"), 0o644)
		copyFile(t, hostGrub, filepath.Join(root, "usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"), 0o644)
		e.wwctl(t, "image", "build", "busybox-sb")
		err := node.Update(e.cfg.NodesConf(), func(db *node.DB) error {
			for _, n := range grubNodes {
				c := &node.Conf{Profiles: node.List{"default"}, NetDevs: map[string]*node.NetDev{
					"default": {Device: "eth0", Hwaddr: n.mac, Ipaddr: n.ip, Netmask: netmask},
				}}
				// The kernel's "secureboot:" line is informational: past
				// the profile's "quiet".
				c.Kernel = &node.Kernel{Args: node.Args{"loglevel=7"}}
				if n.image != "busybox" {
					c.ImageName = n.image
				}
				db.Nodes[n.name] = c
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, n := range grubNodes {
			names = append(names, n.name)
		}
		e.buildOverlays(t, names...)
		grubErr = ""
	})
	if grubErr != "" {
		t.Fatal(grubErr)
	}
}

// grubDaemon starts a warewulfd with `grubboot: true` (and the change
// given) in a namespace of its own, on the shared sandbox.
func (e *env) grubDaemon(t *testing.T, tag string, change func(*config.Config)) (*netns, *proc) {
	t.Helper()
	conf := filepath.Join(e.dir, "warewulf-"+tag+".conf")
	data, err := os.ReadFile(e.conf)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, conf, string(data), 0o644)
	e.configure(t, conf, func(c *config.Config) {
		c.Warewulf.GrubBoot = true
		if change != nil {
			change(c)
		}
	})
	ns := newNetns(t, tag)
	t.Cleanup(ns.del)
	wwd := e.startWarewulfd(t, ns, []string{config.EnvVar + "=" + conf}, "warewulfd-"+tag)
	t.Cleanup(wwd.stop)
	return ns, wwd
}

type uefiOpts struct {
	secureBoot bool // OVMF with Microsoft's keys, Secure Boot on
	httpBoot   bool // UEFI HTTP boot only: no PXE
}

// bootUEFI powers on an x86_64 UEFI node (q35, OVMF, the NIC's iPXE ROM
// off, so the firmware's own network stack boots it), as DESIGN.md's
// "Secure Boot, checked here" sets it up.
func bootUEFI(t *testing.T, ns *netns, n testNode, o uefiOpts) *vm {
	t.Helper()
	code, varsTmpl := ovmfCode, ovmfVars
	if o.secureBoot {
		code, varsTmpl = ovmfCodeMS, ovmfVarsMS
	}
	vars := filepath.Join(t.TempDir(), "OVMF_VARS.fd")
	data, err := os.ReadFile(varsTmpl)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, vars, string(data), 0o644)
	argv := []string{"qemu-system-x86_64", "-name", n.name,
		"-machine", "q35,smm=on,accel=tcg",
		"-global", "driver=cfi.pflash01,property=secure,value=on",
		"-m", "1024", "-smp", "1",
		"-nodefaults", "-display", "none", "-serial", "stdio", "-monitor", "none",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + code,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars,
		"-netdev", "tap,id=net0,ifname=" + ns.tap(t) + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=net0,romfile=,mac=" + n.mac,
	}
	if o.httpBoot {
		// OVMF's PXE off: the firmware tries HTTP boot alone.
		argv = append(argv, "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
			"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n",
			"-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=n")
	}
	return startVM(t, ns, n, argv)
}

// startVM runs a VM's qemu command line in ns; it is stopped when the test
// ends, and its console is kept in the artifacts.
func startVM(t *testing.T, ns *netns, n testNode, argv []string) *vm {
	t.Helper()
	logFile := filepath.Join(artifacts, n.name+"-console.log")
	powerOn := time.Now()
	p, err := startProc(n.name, ns.exec(argv...), nil, logFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := &vm{name: n.name, mac: n.mac, uefi: true, p: p, powerOn: powerOn}
	t.Cleanup(func() {
		v.p.stop()
		v.writeTimed(strings.TrimSuffix(logFile, ".log") + ".timed.log")
		if t.Failed() {
			t.Logf("%s console (%s), last lines:\n%s", n.name, logFile, v.p.out.tail(40))
		}
	})
	return v
}

// grubBoot is how long a UEFI node takes through shim and GRUB under TCG.
const grubBoot = 5 * time.Minute

// checkGrubChain checks what warewulfd served a GRUB node: shim and GRUB
// (from where), its grub.cfg, then the files iPXE would load.
func checkGrubChain(t *testing.T, wwd *proc, n testNode, shimFrom, grubFrom string) {
	t.Helper()
	said := func(re string) {
		t.Helper()
		if _, _, ok := wwd.out.waitFor(regexp.MustCompile(re), 0, 2*time.Second, nil); !ok {
			t.Errorf("warewulfd logged no line matching %q", re)
		}
	}
	said(`(tftp: served.* file=warewulf/shim\.efi peer=` + regexp.QuoteMeta(n.ip) + `|file=` + regexp.QuoteMeta(shimFrom) + ` .*node=` + n.name + ` stage=efiboot status=200)`)
	said(`(tftp: served.* file=warewulf/grubx64\.efi peer=` + regexp.QuoteMeta(n.ip) + `|file=` + regexp.QuoteMeta(grubFrom) + ` .*node=` + n.name + ` stage=efiboot status=200)`)
	// Debian's signed GRUB came by TFTP and has no http: the rest by TFTP
	// too, the runtime overlay later from wwclient by HTTP.
	for _, stage := range []string{"grub", "kernel", "image", "kmods", "system"} {
		said(`tftp: served.* file="/?warewulf/` + stage + `/` + n.mac + `" peer=` + regexp.QuoteMeta(n.ip))
	}
	said(`hwaddr="` + n.mac + `" ip=` + regexp.QuoteMeta(n.ip) + ` node=` + n.name + ` stage=runtime status=200`)
}

// TestBootSecureBoot: Secure Boot on, with Microsoft's keys enrolled. The
// firmware gets shim by TFTP (DHCP names warewulf/shim.efi), shim GRUB, and
// both come from the node's image; GRUB loads the image's signed kernel and
// the same image, kmods and overlays as iPXE; the kernel reports Secure
// Boot enabled, and the node reaches its runtime overlay. A BIOS node boots
// through iPXE from the same warewulfd at the same time.
func TestBootSecureBoot(t *testing.T) {
	e := getEnv(t)
	e.grubSetup(t)
	ns, wwd := e.grubDaemon(t, "grub", nil)
	n, bios := grubNode("sb1"), grubNode("sb3")
	v := bootUEFI(t, ns, n, uefiOpts{secureBoot: true})
	vb := bootVM(t, ns, bios.name, bios.mac, vmOpts{})
	v.waitFor(t, regexp.MustCompile(`Warewulf: GRUB boots sb1`), grubBoot)
	v.waitFor(t, regexp.MustCompile(`secureboot: Secure boot enabled`), grubBoot)
	v.bootTimes(t, "uefi-secureboot-grub-busybox", grubBoot)
	vb.bootTimes(t, "bios-busybox-beside-grub", busyboxBoot)
	root := e.cfg.ImageRootfs("busybox-sb")
	checkGrubChain(t, wwd, n, filepath.Join(root, "usr/lib/shim/shimx64.efi.signed"), filepath.Join(root, "usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"))
	e2eSaid(t, wwd, `hwaddr="`+bios.mac+`" .*node=sb3 stage=ipxe status=200`)
	e2eSaid(t, wwd, `dhcp: ACK `+regexp.QuoteMeta(n.ip)+` to `+n.mac)
	if _, _, ok := wwd.out.waitFor(regexp.MustCompile(`node=sb3 stage=(grub|efiboot)`), 0, time.Second, nil); ok {
		t.Error("the BIOS node was sent GRUB")
	}
}

// TestBootSecureBootOff: the same image and chain on firmware without
// Secure Boot.
func TestBootSecureBootOff(t *testing.T) {
	e := getEnv(t)
	e.grubSetup(t)
	ns, wwd := e.grubDaemon(t, "grub-off", nil)
	n := grubNode("sb2")
	v := bootUEFI(t, ns, n, uefiOpts{})
	v.waitFor(t, regexp.MustCompile(`Warewulf: GRUB boots sb2`), grubBoot)
	v.waitFor(t, regexp.MustCompile(`secureboot: Secure boot disabled`), grubBoot)
	v.bootTimes(t, "uefi-grub-busybox", grubBoot)
	root := e.cfg.ImageRootfs("busybox-sb")
	checkGrubChain(t, wwd, n, filepath.Join(root, "usr/lib/shim/shimx64.efi.signed"), filepath.Join(root, "usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"))
}

// TestBootHTTPBoot: UEFI HTTP boot with warewulfd's TFTP off and the
// firmware's PXE off. DHCP answers the HTTPClient vendor class with a URL
// and echoes option 60: upstream's ipxe-snponly-x86_64.efi from /efi/
// (Debian's snponly.efi), then iPXE's script,
// kernel and initrds, all by HTTP. (Through shim and GRUB, HTTP boot needs
// a GRUB with the http module; Debian's signed one has none: docs/boot.md.)
func TestBootHTTPBoot(t *testing.T) {
	e := getEnv(t)
	e.grubSetup(t)
	ns, wwd := e.grubDaemon(t, "httpboot", func(c *config.Config) {
		c.Warewulf.GrubBoot = false
		c.TFTP.Enabled = false
	})
	n := grubNode("sb4")
	v := bootUEFI(t, ns, n, uefiOpts{httpBoot: true})
	v.bootTimes(t, "uefi-httpboot-busybox", grubBoot)
	e2eSaid(t, wwd, `efi: served.* file=ipxe-snponly-x86_64\.efi ip="?`+regexp.QuoteMeta(n.ip))
	for _, stage := range []string{"ipxe", "kernel", "image", "kmods", "system", "runtime"} {
		e2eSaid(t, wwd, `hwaddr="`+n.mac+`" ip=`+regexp.QuoteMeta(n.ip)+` node=`+n.name+` stage=`+stage+` status=200`)
	}
	if _, _, ok := wwd.out.waitFor(regexp.MustCompile(`tftp: (served|.*not found)`), 0, time.Second, nil); ok {
		t.Error("a file went by TFTP")
	}
	e2eSaid(t, wwd, fmt.Sprintf(`dhcp: ACK %s to %s`, regexp.QuoteMeta(n.ip), n.mac))
}

func e2eSaid(t *testing.T, p *proc, re string) {
	t.Helper()
	if _, _, ok := p.out.waitFor(regexp.MustCompile(re), 0, 2*time.Second, nil); !ok {
		t.Errorf("%s logged no line matching %q", p.name, re)
	}
}

// TestBootHTTPBootGrub: UEFI HTTP boot through shim and GRUB, TFTP off:
// DHCP hands out /efiboot/shim.efi (the controller's shim: the image has
// none), shim fetches grubx64.efi from beside itself (the image's, in
// Enterprise Linux's place, /usr/lib64/efi/), and GRUB, which has the http
// module as Enterprise Linux's and SUSE's do, gets its grub.cfg from
// /efiboot/grub.cfg (upstream's route: the node is the one at the
// client's address) and loads kernel and initrds by HTTP. That GRUB is
// made here with grub-mkimage from Debian's unsigned modules
// (grub-efi-amd64-bin), so Secure Boot is off.
func TestBootHTTPBootGrub(t *testing.T) {
	e := getEnv(t)
	e.grubSetup(t)
	mods := "/usr/lib/grub/x86_64-efi/http.mod"
	_, err := os.Stat(mods)
	_, err2 := exec.LookPath("grub-mkimage")
	testenv.Need(t, "needs grub-mkimage and "+mods+" (grub-efi-amd64-bin)", err == nil && err2 == nil)
	grubHTTPOnce.Do(func() {
		e.wwctl(t, "image", "copy", "busybox", "busybox-http")
		grub := filepath.Join(e.cfg.ImageRootfs("busybox-http"), "usr/lib64/efi/grubx64.efi")
		os.MkdirAll(filepath.Dir(grub), 0o755)
		// Upstream GRUB (unlike Enterprise Linux's) neither configures its
		// network nor takes its prefix from the HTTP boot URI: the config
		// built into it does, and reads grub.cfg from beside GRUB, as
		// Enterprise Linux's does: /efiboot/grub.cfg, the node found by
		// its address.
		early := filepath.Join(t.TempDir(), "early.cfg")
		writeFile(t, early, fmt.Sprintf("net_bootp\nconfigfile (http,%s:%d)/efiboot/grub.cfg\n", e.cfg.Ipaddr, e.cfg.Warewulf.Port), 0o644)
		run(t, nil, "grub-mkimage", "-O", "x86_64-efi", "-p", "/grub", "-c", early, "-o", grub,
			"efinet", "tftp", "http", "linux", "normal", "configfile", "echo", "smbios", "test", "sleep", "reboot", "halt", "efifwsetup", "gzio", "minicmd")
		e.wwctl(t, "image", "build", "busybox-http")
	})
	n := testNode{"sb5", "52:54:00:99:00:36", prefix + "36", "busybox-http"}
	err = node.Update(e.cfg.NodesConf(), func(db *node.DB) error {
		db.Nodes[n.name] = &node.Conf{Profiles: node.List{"default"}, ImageName: n.image,
			Kernel:  &node.Kernel{Args: node.Args{"loglevel=7"}},
			NetDevs: map[string]*node.NetDev{"default": {Device: "eth0", Hwaddr: n.mac, Ipaddr: n.ip, Netmask: netmask}}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.buildOverlays(t, n.name)
	ns, wwd := e.grubDaemon(t, "httpgrub", func(c *config.Config) { c.TFTP.Enabled = false })
	v := bootUEFI(t, ns, n, uefiOpts{httpBoot: true})
	v.waitFor(t, regexp.MustCompile(`Warewulf: GRUB boots sb5`), grubBoot)
	v.bootTimes(t, "uefi-httpboot-shim-grub-busybox", grubBoot)
	e2eSaid(t, wwd, `file=`+regexp.QuoteMeta(hostShim)+` hwaddr="`+n.mac+`" ip=`+regexp.QuoteMeta(n.ip)+` node=sb5 stage=efiboot status=200`)
	e2eSaid(t, wwd, `file=`+regexp.QuoteMeta(filepath.Join(e.cfg.ImageRootfs(n.image), "usr/lib64/efi/grubx64.efi"))+` hwaddr="`+n.mac+`" .*node=sb5 stage=efiboot status=200`)
	// grub.cfg: an efiboot line without a file.
	e2eSaid(t, wwd, `duration=\S+ hwaddr="`+n.mac+`" ip=`+regexp.QuoteMeta(n.ip)+` node=sb5 stage=efiboot status=200`)
	for _, stage := range []string{"kernel", "image", "kmods", "system", "runtime"} {
		e2eSaid(t, wwd, `hwaddr="`+n.mac+`" ip=`+regexp.QuoteMeta(n.ip)+` node=sb5 stage=`+stage+` status=200`)
	}
	if _, _, ok := wwd.out.waitFor(regexp.MustCompile(`tftp: (served|.*not found)`), 0, time.Second, nil); ok {
		t.Error("a file went by TFTP")
	}
}

var grubHTTPOnce sync.Once
