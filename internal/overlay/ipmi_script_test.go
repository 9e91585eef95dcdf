package overlay

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// fakeIpmitool answers like a BMC with nothing set and logs each call.
const fakeIpmitool = `#!/bin/sh
echo "$*" >>/ipmitool.log
case "$1 $2" in
"lan print") printf 'IP Address Source       : DHCP Address\nIP Address              : 0.0.0.0\n' ;;
"user test") exit 1 ;;
esac
exit 0
`

// TestIPMIScriptPassword runs wwinit's rendered 50-ipmi in a busybox chroot
// with a stand-in ipmitool: the script holds no password; without systemd
// it fetches the runtime overlay (wwclient --once) and sets the password
// from /warewulf/ipmi/password; under systemd it leaves that to a unit
// ordered after wwclient.service, which runs it with --password.
func TestIPMIScriptPassword(t *testing.T) {
	bb, err := exec.LookPath("busybox")
	testenv.Need(t, "busybox is not installed (test/deps.sh: busybox-static)", err == nil)
	testenv.Need(t, "chroot needs root", os.Geteuid() == 0)
	sb := newSandbox(t, t.TempDir())
	db, err := node.Parse([]byte(`nodes:
  n1:
    system overlay: [wwinit]
    runtime overlay: [ipmi.password]
    ipmi: {username: admin, password: "s3cr'et", ipaddr: 10.9.0.5, write: "true"}
`))
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	outs, err := b.Render(db, "wwinit", "warewulf/init.d/50-ipmi.ww", "n1")
	if err != nil || len(outs) != 1 {
		t.Fatalf("render: %v, %d outputs", err, len(outs))
	}
	script := outs[0].Data
	if strings.Contains(string(script), "s3cr") {
		t.Fatalf("the system overlay's script holds the password:\n%s", script)
	}
	pw, err := b.Render(db, "ipmi.password", "warewulf/ipmi/password.ww", "n1")
	if err != nil || len(pw) != 1 || string(pw[0].Data) != "s3cr'et" || pw[0].Mode&0o777 != 0o600 {
		t.Fatalf("ipmi.password: %v %+v", err, pw)
	}

	root := func(t *testing.T) string {
		r := t.TempDir()
		for _, d := range []string{"bin", "dev", "proc", "etc/systemd/system", "warewulf/init.d", "warewulf/ipmi"} {
			if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		data, err := os.ReadFile(bb)
		if err != nil {
			t.Fatal(err)
		}
		write := func(p string, b []byte, mode os.FileMode) {
			if err := os.WriteFile(filepath.Join(r, p), b, mode); err != nil {
				t.Fatal(err)
			}
		}
		write("bin/busybox", data, 0o755)
		for _, c := range []string{"sh", "cat", "sed", "head", "awk", "mkdir", "ln", "printf", "echo", "sleep", "modprobe", "mknod", "rm"} {
			if err := os.Symlink("busybox", filepath.Join(r, "bin", c)); err != nil {
				t.Fatal(err)
			}
		}
		write("bin/ipmitool", []byte(fakeIpmitool), 0o755)
		write("dev/ipmi0", nil, 0o600)
		write("warewulf/init.d/50-ipmi", script, 0o644)
		// wwclient --once brings the runtime overlay.
		write("warewulf/wwclient", []byte("#!/bin/sh\nprintf %s \"$PW\" >/warewulf/ipmi/password\n"), 0o755)
		return r
	}
	run := func(t *testing.T, r, systemd string, args ...string) string {
		cmd := exec.Command("chroot", append([]string{r, "/bin/sh", "/warewulf/init.d/50-ipmi"}, args...)...)
		cmd.Env = []string{"PATH=/bin", "WWSYSTEMD=" + systemd, "PW=" + string(pw[0].Data)}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("50-ipmi: %v\n%s", err, out)
		}
		if strings.Contains(string(out), "s3cr") {
			t.Errorf("the password is in the script's output:\n%s", out)
		}
		return string(out)
	}
	calls := func(r string) string {
		b, _ := os.ReadFile(filepath.Join(r, "ipmitool.log"))
		return string(b)
	}

	t.Run("busybox", func(t *testing.T) {
		r := root(t)
		out := run(t, r, "no")
		if !strings.Contains(out, "ipmi: fetching the runtime overlay") || !strings.Contains(out, "ipmi: password set") || !strings.Contains(calls(r), "user set password 2 s3cr'et\n") {
			t.Errorf("output:\n%s\nipmitool calls:\n%s", out, calls(r))
		}
	})
	t.Run("systemd", func(t *testing.T) {
		r := root(t)
		out := run(t, r, "yes")
		if strings.Contains(calls(r), "user set password") || !strings.Contains(out, "wwipmi-password.service") {
			t.Fatalf("before the runtime overlay: output:\n%s\nipmitool calls:\n%s", out, calls(r))
		}
		unit, err := os.ReadFile(filepath.Join(r, "etc/systemd/system/wwipmi-password.service"))
		if err != nil || !strings.Contains(string(unit), "After=wwclient.service") || !strings.Contains(string(unit), "ExecStart=/bin/sh /warewulf/init.d/50-ipmi --password") {
			t.Fatalf("unit: %v\n%s", err, unit)
		}
		if target, err := os.Readlink(filepath.Join(r, "etc/systemd/system/multi-user.target.wants/wwipmi-password.service")); err != nil || target != "/etc/systemd/system/wwipmi-password.service" {
			t.Errorf("the unit is not enabled: %q %v", target, err)
		}
		// wwclient.service has fetched the runtime overlay; the unit runs.
		if err := os.WriteFile(filepath.Join(r, "warewulf/ipmi/password"), pw[0].Data, 0o600); err != nil {
			t.Fatal(err)
		}
		out = run(t, r, "yes", "--password")
		if !strings.Contains(out, "ipmi: password set") || !strings.Contains(calls(r), "user set password 2 s3cr'et\n") {
			t.Errorf("--password: output:\n%s\nipmitool calls:\n%s", out, calls(r))
		}
	})
}
