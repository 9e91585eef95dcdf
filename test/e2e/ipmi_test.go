package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// bmcNode is a node whose power is in the hands of a real BMC: OpenIPMI's
// ipmi_sim, reached by wwctl over lanplus on the provisioning network,
// starts the node's qemu on `chassis power on` and stops it on power off.
// qemu's ipmi-bmc-extern + isa-ipmi-kcs give the node an in-band KCS
// interface to that same BMC, and ipmi_sim's serial over LAN is the node's
// serial port.
type bmcNode struct {
	testNode
	bmc     *testenv.BMC
	console string // the node's serial output, as qemu logs it
}

const bmcUser, bmcPass = "admin", "e2e-bmc-pass"

func (e *env) startBMCNode(t *testing.T, n testNode, k int) *bmcNode {
	t.Helper()
	tap := e.ns.tap(t)
	serial, sol := 9100+2*k, 9101+2*k
	console := filepath.Join(artifacts, n.name+"-console.log")
	os.Remove(console)
	// setpriv: the VM dies with ipmi_sim, should the test be killed.
	qemu := strings.Join([]string{"setpriv", "--pdeathsig", "KILL", "qemu-system-x86_64", "-name", n.name,
		"-machine", "pc,accel=tcg", "-m", "768", "-smp", "1",
		"-nodefaults", "-display", "none", "-monitor", "none",
		"-netdev", "tap,id=net0,ifname=" + tap + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=net0,mac=" + n.mac, "-boot", "n",
		"-chardev", fmt.Sprintf("socket,id=ipmi0,host=127.0.0.1,port=%d,reconnect=10", serial),
		"-device", "ipmi-bmc-extern,chardev=ipmi0,id=bmc0", "-device", "isa-ipmi-kcs,bmc=bmc0",
		"-chardev", fmt.Sprintf("socket,id=ser0,host=127.0.0.1,port=%d,server=on,wait=off,logfile=%s", sol, console),
		"-serial", "chardev:ser0"}, " ")
	b := testenv.StartBMC(t, testenv.BMCOptions{
		NetNS: e.ns.name, Addr: controllerIP, Port: 6230 + k, User: bmcUser, Password: bmcPass,
		Serial: serial, SOL: fmt.Sprintf("tcp:127.0.0.1:%d", sol), StartCmd: qemu, Sensors: true,
	})
	t.Cleanup(func() {
		if t.Failed() {
			data, _ := os.ReadFile(console)
			t.Logf("%s console (%s), last lines:\n%s", n.name, console, tail(string(data), 40))
		}
	})
	return &bmcNode{testNode: n, bmc: b, console: console}
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// wwctlNS runs wwctl inside the namespace (where the BMCs and warewulfd
// are) and returns its output and error.
func (e *env) wwctlNS(args ...string) (string, error) {
	return runErr(e.vars, e.ns.exec(append([]string{e.tool("wwctl")}, args...)...)...)
}

// ipmitoolOverlay is a site overlay with the host's ipmitool and the
// libraries it needs, for the busybox image, which has no ipmitool.
func (e *env) ipmitoolOverlay(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("ipmitool")
	testenv.Need(t, "ipmitool is not installed", err == nil)
	root := filepath.Join(e.cfg.SiteOverlayDir(), "e2e-ipmitool", "rootfs")
	copyFile(t, bin, filepath.Join(root, "usr/bin/ipmitool"), 0o755)
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
	return "e2e-ipmitool"
}

// TestIPMIPowerOn: `wwctl power on` takes a node that is off to the
// runtime stage of `wwctl node status`; `power status` tracks it; wwinit,
// with `ipmi write`, sets the BMC up in band (its password from the runtime
// overlay); sensors list the BMC's sensors; a wrong password fails alone;
// `power off` stops the VM.
func TestIPMIPowerOn(t *testing.T) {
	e := getEnv(t)
	n := testNode{"bmc1", "52:54:00:99:00:53", prefix + "53", "busybox"}
	ov := e.ipmitoolOverlay(t)
	b := e.startBMCNode(t, n, 1)
	port := fmt.Sprint(b.bmc.Port)
	e.wwctl(t, "node", "add", n.name, "--profile", "default", "--netdev", "eth0", "--hwaddr", n.mac, "--ipaddr", n.ip, "--netmask", netmask,
		"--system-overlays", ov, "--kernelargs", "no_timer_check", "--ipmiaddr", controllerIP, "--ipmiport", port, "--ipmiuser", bmcUser, "--ipmipass", bmcPass,
		"--ipmiinterface", "lanplus", "--ipmimask", netmask, "--ipmigateway", prefix+"254", "--ipmiwrite")
	e.wwctl(t, "node", "add", "bmcbad", "--ipmiaddr", controllerIP, "--ipmiport", port, "--ipmiuser", bmcUser, "--ipmipass", "wrong")
	e.buildOverlays(t, n.name)

	status := func() string {
		out, err := e.wwctlNS("power", "status", n.name)
		if err != nil {
			t.Fatalf("power status: %v\n%s", err, out)
		}
		return strings.TrimSpace(out)
	}
	if s := status(); s != n.name+": off" {
		t.Fatalf("before power on: %q", s)
	}
	poweredOn := time.Now()
	if out, err := e.wwctlNS("power", "on", n.name); err != nil {
		t.Fatalf("power on: %v\n%s", err, out)
	}
	if s := status(); s != n.name+": on" {
		t.Fatalf("after power on: %q", s)
	}

	// The node reaches its runtime overlay, as warewulfd sees it.
	deadline := time.Now().Add(busyboxBoot)
	for {
		out, err := e.wwctlNS("node", "status", n.name, "-o", "json")
		var r struct {
			Nodes []struct{ Node, Stage string }
		}
		if err == nil && json.Unmarshal([]byte(out), &r) == nil && len(r.Nodes) == 1 && r.Nodes[0].Stage == "runtime" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach the runtime stage within %v: %v %s", n.name, busyboxBoot, err, out)
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("power on -> runtime stage in node status: %.1fs", time.Since(poweredOn).Seconds())
	fmt.Printf("BOOT-TIME case=ipmi-power-on node=%s power-on->runtime-stage=%.1fs\n", n.name, time.Since(poweredOn).Seconds())

	// wwinit's BMC setup, on the node's own serial log (SOL may drop what
	// the node prints while the BMC's LAN settings change under it).
	deadline = time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(b.console)
		if strings.Contains(string(data), "ipmi: BMC set up") {
			if strings.Contains(string(data), bmcPass) {
				t.Error("the BMC password is on the node's console")
			}
			// The password came with the runtime overlay, not the system one.
			if !regexp.MustCompile(`ipmi: password (set|unchanged)`).Match(data) {
				t.Errorf("the BMC password was not set:\n%s", tail(string(data), 30))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"ipmi: BMC set up\" on the node's console:\n%s", tail(string(data), 30))
		}
		time.Sleep(time.Second)
	}
	// `wwctl node console` (SOL) is tested against ipmi_sim in
	// internal/bmc (TestConsoleOverSOL); here, after the in-band LAN
	// change, SOL sessions to ipmi_sim got no answer (see docs/operations.md).

	out, err := e.wwctlNS("node", "sensors", n.name)
	if err != nil || !strings.Contains(out, n.name+": CPU Temp") || !strings.Contains(out, "42.000 degrees C") {
		t.Errorf("sensors: %v\n%s", err, out)
	}
	out, err = e.wwctlNS("power", "status", n.name+",bmcbad")
	if err == nil || !strings.Contains(out, n.name+": on") || !strings.Contains(out, "bmcbad: bmc "+controllerIP+":"+port+": wrong ipmi username or password") {
		t.Errorf("wrong password beside a good node: %v\n%s", err, out)
	}

	if out, err := e.wwctlNS("power", "off", n.name); err != nil {
		t.Fatalf("power off: %v\n%s", err, out)
	}
	deadline = time.Now().Add(30 * time.Second)
	for status() != n.name+": off" {
		if time.Now().After(deadline) {
			t.Fatalf("power status after power off: %q", status())
		}
		time.Sleep(time.Second)
	}
	// The BMC reports off once it has told qemu to stop; the process may
	// take a moment to exit on a busy machine.
	deadline = time.Now().Add(15 * time.Second)
	for {
		out, _ := runErr(nil, "pgrep", "-f", "qemu-system-x86_64 -name "+n.name+" ")
		if strings.TrimSpace(out) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the VM still runs 15 s after power off: %s", out)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
}
