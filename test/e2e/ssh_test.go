package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// sshdOverlay is a site overlay with the host's dropbear (the busybox
// image has no ssh server) and an init script that starts it with the
// node's own host keys from the ssh.host_keys overlay.
func (e *env) sshdOverlay(t *testing.T) string {
	t.Helper()
	root := filepath.Join(e.cfg.SiteOverlayDir(), "e2e-sshd", "rootfs")
	for _, bin := range []string{"/usr/sbin/dropbear", "/usr/bin/dropbearconvert"} {
		_, err := exec.LookPath(bin)
		testenv.Need(t, bin+" is not installed (dropbear-bin, test/deps.sh)", err == nil)
		copyWithLibs(t, bin, root)
	}
	// The host keys may come with the runtime overlay, after wwinit: wait
	// for them in the background.
	writeFile(t, filepath.Join(root, "warewulf/init.d/60-dropbear"), `#!/bin/sh
(
	n=0
	while [ ! -f /etc/ssh/ssh_host_ed25519_key ] && [ $n -lt 120 ]; do
		sleep 1
		n=$((n + 1))
	done
	mkdir -p /etc/dropbear
	keys=
	for k in ed25519 ecdsa; do
		[ -f /etc/ssh/ssh_host_${k}_key ] || continue
		dropbearconvert openssh dropbear /etc/ssh/ssh_host_${k}_key /etc/dropbear/${k} >/dev/null 2>&1 && keys="$keys -r /etc/dropbear/$k"
	done
	dropbear $keys -p 22 && echo "dropbear: listening with$keys"
) </dev/null >/dev/console 2>&1 &
`, 0o755)
	return "e2e-sshd"
}

// copyWithLibs copies a program and the shared libraries ldd names into
// an overlay tree at the same paths.
func copyWithLibs(t *testing.T, bin, root string) {
	t.Helper()
	copyFile(t, bin, filepath.Join(root, bin), 0o755)
	for _, l := range lines(run(t, nil, "ldd", bin)) {
		f := strings.Fields(l)
		lib := ""
		switch {
		case len(f) >= 3 && f[1] == "=>":
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0]
		}
		if lib == "" {
			continue
		}
		real, err := filepath.EvalSymlinks(lib)
		if err != nil {
			t.Fatal(err)
		}
		copyFile(t, real, filepath.Join(root, lib), 0o755)
	}
}

// TestSSHThreeNodes: `wwctl ssh` runs a command on three booted nodes at
// once, logging in as root with the cluster key `wwctl configure ssh` made
// and checking each node's host key against the known_hosts it wrote.
// Each line comes back prefixed with its node, with a summary of exit
// codes; a node failing the command fails the whole run.
func TestSSHThreeNodes(t *testing.T) {
	e := getEnv(t)
	ov := e.sshdOverlay(t)
	nodes := []testNode{
		{"ssh1", "52:54:00:99:00:41", prefix + "41", "busybox"},
		{"ssh2", "52:54:00:99:00:42", prefix + "42", "busybox"},
		{"ssh3", "52:54:00:99:00:43", prefix + "43", "busybox"},
	}
	var names []string
	for _, n := range nodes {
		e.wwctl(t, "node", "add", n.name, "--profile", "default", "--netdev", "eth0", "--hwaddr", n.mac, "--ipaddr", n.ip,
			"--netmask", netmask, "--system-overlays", ov, "--kernelargs", "no_timer_check")
		names = append(names, n.name)
	}
	// ssh1 asks for BMC setup, but its image has no ipmitool: wwinit says
	// so and boots on.
	e.wwctl(t, "node", "set", "ssh1", "--ipmiwrite", "--ipmiaddr", prefix+"241", "--ipmiuser", "admin", "--ipmipass", "unused-pass")
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	e.wwctl(t, "configure", "ssh", "--known-hosts-file", knownHosts)
	e.buildOverlays(t, names...)
	// ssh with the known_hosts configure wrote, and nothing of this host's.
	rsh := filepath.Join(t.TempDir(), "ssh")
	writeFile(t, rsh, fmt.Sprintf("#!/bin/sh\nexec ssh -F /dev/null -o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o ConnectTimeout=20 \"$@\"\n", knownHosts), 0o755)

	var wg sync.WaitGroup
	vms := make([]*vm, len(nodes))
	for i, n := range nodes {
		vms[i] = bootVM(t, e.ns, n.name, n.mac, vmOpts{})
	}
	ok := make([]bool, len(nodes))
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok[i] = vms[i].wait(reRuntime, busyboxBoot)
		}()
	}
	wg.Wait()
	for i, v := range vms {
		if !ok[i] {
			t.Fatalf("%s did not apply its runtime overlay within %v\n%s", v.name, busyboxBoot, v.p.out.tail(30))
		}
	}
	for _, v := range vms {
		v.waitFor(t, regexp.MustCompile(`dropbear: listening`), time.Minute)
	}
	vms[0].waitFor(t, regexp.MustCompile(`ipmi: ipmitool is not in the image: skipping the BMC setup`), time.Second)
	vms[1].waitFor(t, regexp.MustCompile(`ipmi: ipmi write is not set: leaving the BMC as it is`), time.Second)

	start := time.Now()
	out, err := e.wwctlNS("ssh", "--rsh", rsh, "ssh[1-3]", "--", "echo", "hello from $(hostname)", ";", "cat", "/etc/e2e-marker")
	if err != nil {
		t.Fatalf("wwctl ssh: %v\n%s", err, out)
	}
	t.Logf("wwctl ssh on three nodes in %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	for _, n := range nodes {
		for _, want := range []string{n.name + ": hello from " + n.name + "\n", n.name + ": node " + n.name + " marker"} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
	}
	if !strings.Contains(out, "ssh: exit 0 (3): ssh1 ssh2 ssh3") {
		t.Errorf("no summary of three clean exits in:\n%s", out)
	}

	out, err = e.wwctlNS("ssh", "--rsh", rsh, "--fanout", "2", "ssh[1-3]", "--", "test", "$(hostname)", "!=", "ssh2")
	if err == nil || !strings.Contains(out, "ssh: exit 0 (2): ssh1 ssh3") || !strings.Contains(out, "ssh: exit 1 (1): ssh2") ||
		!strings.Contains(out, "1 of 3 nodes failed") {
		t.Errorf("a node failing the command: %v\n%s", err, out)
	}
}
