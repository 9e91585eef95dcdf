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
// ipmi_sim, on an address of its own on the provisioning network, reached
// by wwctl over lanplus, starts the node's qemu on `chassis power on` and
// stops it on power off. qemu's ipmi-bmc-extern + isa-ipmi-kcs give the
// node an in-band KCS interface to that same BMC, and ipmi_sim's serial
// over LAN is the node's serial port (ipmi_sim connects to qemu's serial
// socket, retrying every 10 s while qemu is off: what the node prints
// before that reaches qemu's log only).
type bmcNode struct {
	testNode
	bmc     *testenv.BMC
	console string // the node's serial output, as qemu logs it
}

const bmcUser, bmcPass = "admin", "e2e-bmc-pass"

// startBMCNode starts the BMC of node n on bmcIP (an address it adds to
// the namespace's bridge), UDP port 6230+k; the node's VM is off.
func (e *env) startBMCNode(t *testing.T, n testNode, k int, bmcIP string) *bmcNode {
	t.Helper()
	run(t, nil, e.ns.exec("ip", "addr", "add", bmcIP+"/24", "dev", e.ns.bridge)...)
	t.Cleanup(func() { runErr(nil, e.ns.exec("ip", "addr", "del", bmcIP+"/24", "dev", e.ns.bridge)...) })
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
		NetNS: e.ns.name, Addr: bmcIP, Port: 6230 + k, User: bmcUser, Password: bmcPass,
		Serial: serial, SOL: fmt.Sprintf("tcp:127.0.0.1:%d", sol), StartCmd: qemu, Sensors: true,
	})
	t.Cleanup(func() {
		// ipmi_sim's own log, for the artifacts.
		if data, err := os.ReadFile(filepath.Join(b.Dir, "sim.log")); err == nil {
			os.WriteFile(filepath.Join(artifacts, n.name+"-ipmi_sim.log"), data, 0o644)
		}
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
	copyWithLibs(t, bin, root)
	return "e2e-ipmitool"
}

// TestIPMIPowerOn: `wwctl power on` takes a node that is off to the
// runtime stage of `wwctl node status`; `power status` tracks it; its
// console over SOL, run under tmux as an admin would, shows the boot and
// runs what is typed, in one session from power on to the end (ipmi_sim
// closes a session 30 s after its last IPMI message, SOL not counted:
// the console's keepalive holds it); wwinit, with `ipmi write`, has set
// the BMC up in band from nodes.conf: `ipmitool lan print` on the node
// shows the address, netmask, gateway and VLAN, the user logs in, and the
// password came with the runtime overlay (root-only), not in the setup
// script; sensors list the BMC's sensors; a wrong password fails alone;
// `power off` stops the VM.
func TestIPMIPowerOn(t *testing.T) {
	e := getEnv(t)
	_, err := exec.LookPath("tmux")
	testenv.Need(t, "tmux is not installed (test/deps.sh)", err == nil)
	n := testNode{"bmc1", "52:54:00:99:00:53", prefix + "53", "busybox"}
	bmcIP := prefix + "153"
	ov := e.ipmitoolOverlay(t)
	b := e.startBMCNode(t, n, 1, bmcIP)
	port := fmt.Sprint(b.bmc.Port)
	e.wwctl(t, "node", "add", n.name, "--profile", "default", "--netdev", "eth0", "--hwaddr", n.mac, "--ipaddr", n.ip, "--netmask", netmask,
		"--system-overlays", ov, "--kernelargs", "no_timer_check", "--ipmiaddr", bmcIP, "--ipmiport", port, "--ipmiuser", bmcUser, "--ipmipass", bmcPass,
		"--ipmiinterface", "lanplus", "--ipmimask", netmask, "--ipmigateway", prefix+"254", "--ipmiwrite", "--ipmitagadd", "vlan=42")
	e.wwctl(t, "node", "add", "bmcbad", "--ipmiaddr", bmcIP, "--ipmiport", port, "--ipmiuser", bmcUser, "--ipmipass", "wrong")
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

	// The console, in tmux, from the start of the boot.
	sock := filepath.Join(t.TempDir(), "tmux")
	tmux := func(args ...string) string {
		out, err := runErr(nil, append([]string{"tmux", "-S", sock}, args...)...)
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return out
	}
	consoleCmd := strings.Join(append(append([]string{"env"}, e.vars...), e.ns.exec(e.tool("wwctl"), "node", "console", n.name)...), " ")
	consoleStart := time.Now()
	tmux("new-session", "-d", "-s", "console", "-x", "160", "-y", "50", consoleCmd+"; sleep 600")
	t.Cleanup(func() { runErr(nil, "tmux", "-S", sock, "kill-server") })
	// Everything the console printed, raw, for the logs.
	paneLog := filepath.Join(artifacts, n.name+"-wwctl-console.log")
	os.Remove(paneLog)
	tmux("pipe-pane", "-t", "console", "cat >> "+paneLog)
	pane := func() string { return tmux("capture-pane", "-p", "-J", "-t", "console", "-S", "-3000") }
	// What wwctl printed, from the pipe: the pane itself may be redrawn.
	printed := func() string {
		raw, _ := os.ReadFile(paneLog)
		return strings.ReplaceAll(stripANSI(string(raw)), "\r", "")
	}
	waitPane := func(what string, re *regexp.Regexp, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for !re.MatchString(printed()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no %q from wwctl node console within %v (%s); it printed:\n%s\nthe pane:\n%s", what, re, timeout, paneLog, tail(printed(), 30), tail(pane(), 20))
			}
			time.Sleep(time.Second)
		}
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

	// The boot went by on the console: wwinit's BMC setup, then init.
	waitPane("boot log", regexp.MustCompile(`ipmi: BMC set up`), 60*time.Second)
	waitPane("boot log", regexp.MustCompile(`busybox init: system up on bmc1`), 30*time.Second)
	// The same on the node's own serial log, which has it all.
	data, _ := os.ReadFile(b.console)
	if strings.Contains(string(data), bmcPass) {
		t.Error("the BMC password is on the node's console")
	}
	// The password came with the runtime overlay, not the system one.
	if !regexp.MustCompile(`ipmi: password (set|unchanged)`).Match(data) {
		t.Errorf("the BMC password was not set:\n%s", tail(string(data), 30))
	}
	// A keystroke runs a command there.
	tmux("send-keys", "-t", "console", "Enter")
	waitPane("shell prompt", regexp.MustCompile(`/ # `), 60*time.Second)
	// ash asks the terminal where the cursor is at each prompt; the answer
	// comes back over SOL after ash stopped waiting and lands in its line:
	// Ctrl-U clears it before the command is typed.
	time.Sleep(3 * time.Second)
	tmux("send-keys", "-t", "console", "C-u")
	// The pattern [x] matches the password without the console showing it.
	passRE := bmcPass[:len(bmcPass)-1] + "[" + bmcPass[len(bmcPass)-1:] + "]"
	tmux("send-keys", "-t", "console", "echo typed-$((6*7)); grep -q "+passRE+" /warewulf/init.d/50-ipmi || echo no-password-in-script-$((2+2)); ls -ln /warewulf/ipmi/password; ipmitool lan print 1 | grep -E '^(IP Address|Subnet Mask|Default Gateway IP|802.1q VLAN ID) '", "Enter")
	waitPane("keystrokes", regexp.MustCompile(`typed-42`), 60*time.Second)
	// The setup script (system overlay) holds no password; the runtime
	// overlay brought it, root-only.
	waitPane("no password in the setup script", regexp.MustCompile(`no-password-in-script-4`), 30*time.Second)
	waitPane("the password file", regexp.MustCompile(`-rw------- +1 0 +0 .*/warewulf/ipmi/password`), 30*time.Second)
	waitPane("lan print on the node", regexp.MustCompile(`Default Gateway IP +: `+regexp.QuoteMeta(prefix+"254")), 60*time.Second)
	p := printed()
	for _, want := range []string{`IP Address Source +: Static Address`, `IP Address +: ` + regexp.QuoteMeta(bmcIP), `Subnet Mask +: 255\.255\.255\.0`, `802\.1q VLAN ID +: 42`} {
		if !regexp.MustCompile(want).MatchString(p) {
			t.Errorf("ipmitool lan print on the node lacks %q", want)
		}
	}
	// Past ipmi_sim's 30 s without an IPMI message, the console still
	// runs what is typed, in the same SOL session.
	if d := 40*time.Second - time.Since(consoleStart); d > 0 {
		time.Sleep(d)
	}
	tmux("send-keys", "-t", "console", "echo still-$((5*5))", "Enter")
	waitPane("keystrokes 40 s into the console", regexp.MustCompile(`still-25`), 30*time.Second)
	p = printed()
	if strings.Contains(p, "reconnecting]") {
		t.Errorf("the console lost its SOL session:\n%s", tail(p, 30))
	}
	if strings.Contains(p, bmcPass) {
		t.Error("the BMC password went by on the console")
	}
	t.Logf("one console session for %.0fs", time.Since(consoleStart).Seconds())

	out, err := e.wwctlNS("node", "sensors", n.name)
	if err != nil || !strings.Contains(out, n.name+": CPU Temp") || !strings.Contains(out, "42.000 degrees C") {
		t.Errorf("sensors: %v\n%s", err, out)
	}
	out, err = e.wwctlNS("power", "status", n.name+",bmcbad")
	if err == nil || !strings.Contains(out, n.name+": on") || !strings.Contains(out, "bmcbad: bmc "+bmcIP+":"+port+": wrong ipmi username or password") {
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
