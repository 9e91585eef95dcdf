package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// vm is a qemu node booting from the network on a tap of a netns.
type vm struct {
	name, mac string
	tap       string // its tap device in the namespace
	uefi      bool
	p         *proc
	powerOn   time.Time
	times     []string
}

// The console lines that mark the stages of a boot.
var (
	reInit    = regexp.MustCompile(`wwinit: node `)
	reRuntime = regexp.MustCompile(`runtime overlay applied`)
)

const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

type vmOpts struct {
	uefi   bool
	memory string
	cpu    string // qemu -cpu (default qemu's)
	disk   string // a raw disk image, attached as a virtio disk (/dev/vda)
	echo   bool   // show the console on stdout (the demo)
	// more NICs (their MACs), each on its own tap of the same bridge,
	// without a boot ROM: the node boots from the first.
	moreNICs []string
	asset    string // the SMBIOS chassis asset tag (the node's asset key)
}

// bootVM powers a node on. Legacy BIOS nodes boot from the NIC's iPXE ROM;
// UEFI nodes have the ROM disabled, so OVMF's own PXE fetches the EFI iPXE
// binary over TFTP first. The VM is stopped when the test ends.
func bootVM(t testing.TB, n *netns, name, mac string, o vmOpts) *vm {
	t.Helper()
	tap := n.tap(t)
	if o.memory == "" {
		o.memory = "768"
	}
	nic := fmt.Sprintf("virtio-net-pci,netdev=net0,mac=%s", mac)
	argv := []string{"qemu-system-x86_64",
		"-name", name,
		"-machine", "pc,accel=tcg",
		"-m", o.memory, "-smp", "1",
		"-nodefaults", "-display", "none", "-serial", "stdio", "-monitor", "none",
		"-netdev", "tap,id=net0,ifname=" + tap + ",script=no,downscript=no",
		"-boot", "n",
	}
	if o.cpu != "" {
		argv = append(argv, "-cpu", o.cpu)
	}
	if o.disk != "" {
		argv = append(argv, "-drive", "file="+o.disk+",if=virtio,format=raw")
	}
	if o.uefi {
		vars := filepath.Join(t.TempDir(), "OVMF_VARS.fd")
		data, err := os.ReadFile(ovmfVars)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vars, data, 0o644); err != nil {
			t.Fatal(err)
		}
		argv = append(argv,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
		nic += ",romfile="
	}
	if o.asset != "" {
		argv = append(argv, "-smbios", "type=3,asset="+o.asset)
	}
	argv = append(argv, "-device", nic)
	for i, mac := range o.moreNICs {
		id := fmt.Sprintf("net%d", i+1)
		argv = append(argv, "-netdev", "tap,id="+id+",ifname="+n.tap(t)+",script=no,downscript=no",
			"-device", fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s,romfile=", id, mac))
	}
	var echo *os.File
	if o.echo {
		echo = os.Stdout
	}
	logFile := filepath.Join(artifacts, name+"-console.log")
	powerOn := time.Now()
	p, err := startProc(name, n.exec(argv...), nil, logFile, echo)
	if err != nil {
		t.Fatal(err)
	}
	v := &vm{name: name, mac: mac, tap: tap, uefi: o.uefi, p: p, powerOn: powerOn}
	t.Cleanup(func() {
		v.p.stop()
		v.writeTimed(strings.TrimSuffix(logFile, ".log") + ".timed.log")
		if t.Failed() {
			t.Logf("%s console (%s), last lines:\n%s", name, logFile, v.p.out.tail(40))
		}
	})
	return v
}

// waitFor waits for a console line and returns the time since power-on.
func (v *vm) waitFor(t testing.TB, re *regexp.Regexp, timeout time.Duration) time.Duration {
	t.Helper()
	_, at, ok := v.p.out.waitFor(re, 0, timeout, v.p.done)
	if !ok {
		t.Fatalf("%s: no console line matching %q within %v (qemu exited: %v)\n%s",
			v.name, re, timeout, v.p.exited(), v.p.out.tail(30))
	}
	return at.Sub(v.powerOn)
}

// waitAfter waits for a console line after line index from.
func (v *vm) waitAfter(t testing.TB, re *regexp.Regexp, from int, timeout time.Duration) time.Time {
	t.Helper()
	_, at, ok := v.p.out.waitFor(re, from, timeout, v.p.done)
	if !ok {
		t.Fatalf("%s: no console line matching %q within %v\n%s", v.name, re, timeout, v.p.out.tail(30))
	}
	return at
}

// bootTimes waits for init and for the runtime overlay, and reports both.
func (v *vm) bootTimes(t testing.TB, kase string, timeout time.Duration) {
	t.Helper()
	init := v.waitFor(t, reInit, timeout)
	rt := v.waitFor(t, reRuntime, timeout)
	recordTime(t, kase, v.name, init, rt)
}

var timesFile = os.Getenv("WW_E2E_TIMES")

// recordTime prints a case's boot times, and appends them to
// $WW_E2E_TIMES when set (docs/boot.md collects them).
func recordTime(t testing.TB, kase, node string, init, runtime time.Duration) {
	line := fmt.Sprintf("BOOT-TIME case=%s node=%s power-on->init=%.1fs power-on->runtime-overlay=%.1fs",
		kase, node, init.Seconds(), runtime.Seconds())
	t.Log(line)
	fmt.Println(line)
	if timesFile != "" {
		if f, err := os.OpenFile(timesFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
}

// shell logs in on the serial console as root (the test images have no
// root password) once, runs script there, and returns what it printed
// between two markers.
func (v *vm) shell(t testing.TB, script string, timeout time.Duration) string {
	t.Helper()
	from := v.p.out.len()
	tag := fmt.Sprintf("E2E%d", time.Now().UnixNano()%1e9)
	fmt.Fprintf(v.p.in, "\necho %s-BEGIN; %s; echo %s-END\n", tag, script, tag)
	begin := regexp.MustCompile("^" + tag + "-BEGIN")
	end := regexp.MustCompile("^" + tag + "-END")
	i, _, ok := v.p.out.waitFor(begin, from, timeout, v.p.done)
	if !ok {
		t.Fatalf("%s: the console shell did not run the script\n%s", v.name, v.p.out.tail(20))
	}
	j, _, ok := v.p.out.waitFor(end, i, timeout, v.p.done)
	if !ok {
		t.Fatalf("%s: the script did not finish\n%s", v.name, v.p.out.tail(20))
	}
	v.p.out.mu.Lock()
	defer v.p.out.mu.Unlock()
	return strings.Join(v.p.out.lines[i+1:j], "\n")
}

// login answers the getty's login prompt as root.
func (v *vm) login(t testing.TB, timeout time.Duration) {
	t.Helper()
	for _, step := range []struct{ send, prompt string }{{"\n", `login: *$`}, {"root\n", `# *$`}} {
		from := v.p.out.len()
		fmt.Fprint(v.p.in, step.send)
		if _, _, ok := v.p.out.waitForPrompt(regexp.MustCompile(step.prompt), from, timeout, v.p.done); !ok {
			t.Fatalf("%s: no prompt %q on the console\n%s", v.name, step.prompt, v.p.out.tail(20))
		}
	}
}

// writeTimed writes the console with each line's time since power-on, to
// see where a boot spends its time.
func (v *vm) writeTimed(file string) {
	o := v.p.out
	o.mu.Lock()
	defer o.mu.Unlock()
	var b strings.Builder
	for i, l := range o.lines {
		fmt.Fprintf(&b, "%7.2fs %s\n", o.stamps[i].Sub(v.powerOn).Seconds(), l)
	}
	os.WriteFile(file, []byte(b.String()), 0o644)
}
