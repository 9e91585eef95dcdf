package e2e

import (
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var debianOnce sync.Once

// importDebian imports the Debian bookworm image from its OCI archive and
// builds it, once per run.
func (e *env) importDebian(t *testing.T) {
	t.Helper()
	ok := false
	debianOnce.Do(func() {
		archive := debianOCIArchive(t)
		start := time.Now()
		e.wwctl(t, "image", "import", "--force", "oci-archive:"+archive, "debian")
		e.wwctl(t, "image", "build", "debian")
		t.Logf("debian image imported and built in %v", time.Since(start).Round(time.Millisecond))
		ok = true
	})
	if !ok {
		if _, err := os.Stat(e.cfg.ImageRootfs("debian")); err != nil {
			t.Fatal("the debian image was not imported (see the first test that tried)")
		}
	}
}

// TestBootDebian: a Debian bookworm image with systemd, imported from an
// OCI archive, reaches multi-user with the hostname, /etc/hosts and network
// configuration of its system overlay, and wwclient running as a service.
func TestBootDebian(t *testing.T) {
	e := getEnv(t)
	e.importDebian(t)
	n := clusterNode("n6")
	// systemd honours "quiet": show its progress on the console here.
	e.wwctl(t, "node", "set", n.name, "--kernelargs", "systemd.show_status=1")
	e.buildOverlays(t, n.name)
	v := bootVM(t, e.ns, n.name, n.mac, vmOpts{memory: "2048"})
	init := v.waitFor(t, reInit, debianBoot)
	multi := v.waitFor(t, regexp.MustCompile(`Reached target.*Multi-User System`), debianBoot)
	rt := v.waitFor(t, reRuntime, debianBoot)
	recordTime(t, "bios-debian-systemd", n.name, init, rt)
	t.Logf("n6 reached multi-user %.1fs after power-on", multi.Seconds())

	v.login(t, time.Minute)
	out := v.shell(t, "hostname; grep -c -E '^10\\.99\\.0\\.1[1-7][[:space:]]+n[1-7]' /etc/hosts; ip -4 -o addr show dev eth0; systemctl is-active wwclient; systemctl is-system-running", time.Minute)
	got := lines(out)
	t.Logf("n6 says:\n%s", out)
	if len(got) < 5 {
		t.Fatalf("short answer from n6: %q", out)
	}
	if got[0] != "n6" {
		t.Errorf("hostname %q, want n6", got[0])
	}
	if got[1] != "7" {
		t.Errorf("/etc/hosts lists %s of the 7 nodes", got[1])
	}
	if !strings.Contains(got[2], n.ip+"/24") {
		t.Errorf("eth0: %q, want %s/24", got[2], n.ip)
	}
	if got[3] != "active" {
		t.Errorf("wwclient is %q", got[3])
	}
}
