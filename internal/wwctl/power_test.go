package wwctl_test

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/testenv"
)

func freeUDP(t *testing.T) int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestPowerCommands drives ipmi_sim BMCs through `wwctl power` and `wwctl
// node sensors`, with a node whose password is wrong and one without a BMC
// among them.
func TestPowerCommands(t *testing.T) {
	a := testenv.StartBMC(t, testenv.BMCOptions{Addr: "127.0.0.1", Port: freeUDP(t), User: "admin", Password: "s3cret", Sensors: true})
	b := testenv.StartBMC(t, testenv.BMCOptions{Addr: "127.0.0.1", Port: freeUDP(t), User: "admin", Password: "s3cret"})
	s := newSandbox(t)
	s.ok("profile", "add", "default")
	s.ok("profile", "set", "default", "--ipmiuser", "admin", "--ipmipass", "s3cret", "--ipmiinterface", "lanplus")
	s.ok("node", "add", "n1", "--ipmiaddr", "127.0.0.1", "--ipmiport", strconv.Itoa(a.Port))
	s.ok("node", "add", "n2", "--ipmiaddr", "127.0.0.1", "--ipmiport", strconv.Itoa(b.Port))
	s.ok("node", "add", "n3", "--ipmiaddr", "127.0.0.1", "--ipmiport", strconv.Itoa(b.Port), "--ipmipass", "wrong")
	s.ok("node", "add", "n4")

	out := s.ok("power", "status", "n[1-2]")
	if out != "n1: off\nn2: off\n" {
		t.Errorf("power status: %q", out)
	}
	s.ok("power", "on", "n1")
	if a.Power() != "on" || b.Power() != "off" {
		t.Errorf("after power on n1: n1 %s, n2 %s", a.Power(), b.Power())
	}
	out, errs, code := s.run("power", "status", "n[1-4]")
	if code == 0 || out != "n1: on\nn2: off\n" {
		t.Errorf("status with failing nodes: exit %d, %q", code, out)
	}
	for _, want := range []string{"n3: bmc 127.0.0.1:", "wrong ipmi username or password", "n4: no ipmi ipaddr", "2 of 4 nodes failed"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, "wrong\"") || strings.Contains(out+errs, "s3cret") {
		t.Errorf("a password is printed:\n%s%s", out, errs)
	}
	s.ok("power", "off", "n1")
	if a.Power() != "off" {
		t.Errorf("after power off n1: %s", a.Power())
	}

	out = s.ok("power", "status", "n1", "-o", "json")
	var res []map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 1 || res[0]["node"] != "n1" || res[0]["power"] != "off" {
		t.Errorf("-o json: %v %s", err, out)
	}

	out = s.ok("power", "on", "n1", "--show")
	if want := "127.0.0.1: ipmitool -I lanplus -p " + strconv.Itoa(a.Port) + ` -H 127.0.0.1 -U "admin" -P "s3cret" chassis power on` + "\n"; out != want {
		t.Errorf("--show: %q, want %q", out, want)
	}
	if a.Power() != "off" {
		t.Error("--show powered the node on")
	}

	out = s.ok("node", "sensors", "n1")
	if !strings.Contains(out, "n1: CPU Temp") || !strings.Contains(out, "42.000 degrees C | ok") || !strings.Contains(out, "3000.000 RPM") {
		t.Errorf("sensors:\n%s", out)
	}

	// A site template runs as upstream runs it: its command, through sh.
	tmpl := filepath.Join(t.TempDir(), "site.tmpl")
	if err := os.WriteFile(tmpl, []byte(`{{ if eq .Cmd "PowerStatus" }}echo {{ .Ipaddr }} says on{{ else }}exit 7{{ end }}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s.ok("node", "add", "n5", "--ipmiaddr", "192.0.2.9", "--ipmitemplate", tmpl)
	if out := s.ok("power", "status", "n5"); out != "n5: 192.0.2.9 says on\n" {
		t.Errorf("site template status: %q", out)
	}
	if _, errs, code := s.run("power", "on", "n5"); code == 0 || !strings.Contains(errs, "n5: ipmi template") || !strings.Contains(errs, "exit status 7") {
		t.Errorf("failing site template: exit %d %s", code, errs)
	}

	for _, bad := range [][]string{
		{"power", "status", "n1", "--fanout", "0"},
		{"power", "status", "n1", "-o", "yaml"},
		{"power", "status", "n["},
		{"power", "on"},
	} {
		if _, errs, code := s.run(bad...); code == 0 || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("wwctl %v: exit %d, stderr %q: want one line and a failure", bad, code, errs)
		}
	}
}

// TestSSHDryRun checks the ssh command line and node resolution without
// a node to run on (the VM test in test/e2e runs it for real).
func TestSSHDryRun(t *testing.T) {
	s := newSandbox(t)
	s.ok("node", "add", "n[1-2]", "--ipaddr", "10.10.0.1", "--netmask", "255.255.0.0")
	s.ok("node", "add", "n3")
	out, errs, code := s.run("ssh", "--dryrun", "n[1-3]", "--", "uname", "-r")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "n1: /usr/bin/ssh -o BatchMode=yes 10.10.0.1 uname -r") || !strings.Contains(out, "n2: /usr/bin/ssh -o BatchMode=yes 10.10.0.2 uname -r") {
		t.Errorf("dry run:\n%s", out)
	}
	if !strings.Contains(errs, "n3: no primary network address") {
		t.Errorf("stderr: %s", errs)
	}
	// A stand-in rsh: prints its arguments, fails on one node.
	rsh := filepath.Join(t.TempDir(), "rsh")
	if err := os.WriteFile(rsh, []byte("#!/bin/sh\nshift 2\necho \"on $1\"\necho warn >&2\n[ \"$1\" = 10.10.0.2 ] && exit 3\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, errs, code = s.run("ssh", "--rsh", rsh, "n[1-2]", "--", "true")
	if code == 0 || !strings.Contains(out, "n1: on 10.10.0.1\n") || !strings.Contains(out, "n2: on 10.10.0.2\n") ||
		!strings.Contains(errs, "n1: warn") || !strings.Contains(errs, "ssh: exit 0 (1): n1") || !strings.Contains(errs, "ssh: exit 3 (1): n2") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestPowerRedfish: `ipmi interface: redfish` through wwctl, against a
// small Redfish service over TLS, its certificate named by the cacert tag.
func TestPowerRedfish(t *testing.T) {
	svc := testenv.StartRedfish(t, "root", "calvin")
	s := newSandbox(t)
	s.ok("node", "add", "r1", "--ipmiaddr", svc.Host, "--ipmiport", svc.Port, "--ipmiinterface", "redfish",
		"--ipmiuser", "root", "--ipmipass", "calvin", "--ipmitagadd", "cacert="+svc.CAFile)
	s.ok("node", "add", "r2", "--ipmiaddr", svc.Host, "--ipmiport", svc.Port, "--ipmiinterface", "redfish",
		"--ipmiuser", "root", "--ipmipass", "calvin", "--ipmitagadd", "insecure=true")
	if out := s.ok("power", "status", "r1"); out != "r1: off\n" {
		t.Errorf("status: %q", out)
	}
	s.ok("power", "on", "r1")
	if svc.Power() != "On" {
		t.Errorf("after power on: %s", svc.Power())
	}
	out, errs, code := s.run("power", "status", "r[1-2]")
	if code != 0 || out != "r1: on\nr2: on\n" || !strings.Contains(errs, "r2: ipmi tag insecure") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	s.ok("power", "soft", "r1")
	if got := strings.Join(svc.Resets(), ","); got != "On,GracefulShutdown" {
		t.Errorf("resets: %s", got)
	}
}
