package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// TestBootDnsmasq: a site that runs dnsmasq instead of the built-in DHCP
// server. dnsmasq runs the config `wwctl configure dhcp --dry-run` prints
// (the host overlay's etc/dnsmasq.d/ww4-hosts.conf.ww, with upstream's
// `dhcp: template: static`: a fixed lease per node), in a namespace of
// its own with a second warewulfd (same sandbox, DHCP and TFTP off), and
// a BIOS node boots through it. dnsmasq serves TFTP itself (`dhcp: tftp:
// true`) from Debian's /usr/lib/ipxe, which has no file by upstream's
// default name (ipxe-snponly-x86_64.efi): the config names snponly.efi,
// and a UEFI node's firmware PXE boots it.
func TestBootDnsmasq(t *testing.T) {
	e := getEnv(t)
	_, err := os.Stat("/usr/sbin/dnsmasq")
	testenv.Need(t, "dnsmasq is not installed (test/deps.sh installs it)", err == nil)
	conf := filepath.Join(e.dir, "warewulf-dnsmasq.conf")
	data, err := os.ReadFile(e.conf)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, conf, string(data), 0o644)
	e.configure(t, conf, func(c *config.Config) {
		c.DHCP.Server = "dnsmasq"
		c.DHCP.Template = "static" // nodes get their nodes.conf address
		c.DHCP.TFTP = true         // dnsmasq serves the iPXE binaries
		c.TFTP.Enabled = false     // and warewulfd leaves it port 69
	})
	vars := []string{config.EnvVar + "=" + conf}
	dnsmasqConf := filepath.Join(artifacts, "dnsmasq.conf")
	// Standard output only: a warning on stderr must not land in the config.
	cmd := exec.Command(e.tool("wwctl"), "configure", "dhcp", "--dry-run")
	cmd.Env = append(os.Environ(), vars...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	rendered, err := cmd.Output()
	if err != nil {
		t.Fatalf("wwctl configure dhcp --dry-run: %v\n%s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("wwctl configure dhcp --dry-run said: %s", stderr.String())
	}
	writeFile(t, dnsmasqConf, string(rendered), 0o644)

	ns := newNetns(t, "dnsmasq")
	t.Cleanup(ns.del)
	wwd := e.startWarewulfd(t, ns, vars, "warewulfd-dnsmasq")
	t.Cleanup(wwd.stop)
	dm, err := startProc("dnsmasq", ns.exec("dnsmasq", "--no-daemon", "--user=root",
		"--conf-file="+dnsmasqConf,
		"--dhcp-leasefile="+filepath.Join(artifacts, "dnsmasq.leases"),
		"--pid-file="+filepath.Join(artifacts, "dnsmasq.pid")),
		nil, filepath.Join(artifacts, "dnsmasq.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dm.stop)

	n := clusterNode("n7")
	v := bootVM(t, ns, n.name, n.mac, vmOpts{})
	v.bootTimes(t, "bios-busybox-dnsmasq", busyboxBoot)
	if _, _, ok := dm.out.waitFor(regexp.MustCompile(`DHCPACK\(br0\) `+regexp.QuoteMeta(n.ip)+` `+n.mac), 0, time.Second, nil); !ok {
		t.Errorf("dnsmasq did not log the lease of %s:\n%s", n.name, dm.out.tail(20))
	}

	u := clusterNode("n8")
	uv := bootVM(t, ns, u.name, u.mac, vmOpts{uefi: true})
	uv.bootTimes(t, "uefi-busybox-dnsmasq", uefiBoot)
	uv.waitFor(t, regexp.MustCompile(`NBP filename is snponly\.efi`), time.Second)
	if _, _, ok := dm.out.waitFor(regexp.MustCompile(`sent /usr/lib/ipxe/snponly\.efi to `+regexp.QuoteMeta(u.ip)), 0, time.Second, nil); !ok {
		t.Errorf("dnsmasq did not log sending snponly.efi to %s:\n%s", u.name, dm.out.tail(20))
	}
	if wwd.exited() || dm.exited() {
		t.Error("warewulfd or dnsmasq stopped")
	}
}
