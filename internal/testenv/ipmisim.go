package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BMC is a running OpenIPMI ipmi_sim: a real IPMI 2.0 BMC (lanplus with
// cipher suite 3 only, serial over LAN, sensors) on a loopback address or an
// address inside a namespace.
type BMC struct {
	Addr     string
	Port     int
	User     string
	Password string
	Dir      string
	cmd      *exec.Cmd
}

// BMCOptions says what the simulated BMC manages.
type BMCOptions struct {
	Addr, User, Password string
	Port                 int // default 623
	// StartCmd is the machine the BMC powers: ipmi_sim starts it on power
	// on and stops it on power off (qemu with ipmi-bmc-extern to Serial).
	// Without it a script keeps the power state in a file (see Power).
	StartCmd string
	// Serial is the TCP port ipmi_sim listens on for qemu's ipmi-bmc-extern
	// chardev (0: none).
	Serial int
	// SOL is where serial over LAN goes, e.g. "tcp:127.0.0.1:4555" for a
	// qemu serial port (empty: no SOL).
	SOL string
	// Sensors adds a temperature sensor reading 42 degrees C and a fan at
	// 3000 RPM.
	Sensors bool
	// NetNS runs ipmi_sim inside this network namespace.
	NetNS string
}

// StartBMC starts ipmi_sim and waits until it listens. It is stopped, by
// its PID, when the test ends.
func StartBMC(t testing.TB, o BMCOptions) *BMC {
	t.Helper()
	_, err := exec.LookPath("ipmi_sim")
	Need(t, "ipmi_sim (Debian openipmi) is not installed", err == nil)
	b, err := startBMC(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

func startBMC(dir string, o BMCOptions) (*BMC, error) {
	if o.Port == 0 {
		o.Port = 623
	}
	b := &BMC{Addr: o.Addr, Port: o.Port, User: o.User, Password: o.Password, Dir: dir}
	var lan strings.Builder
	fmt.Fprintf(&lan, "name \"sim\"\nset_working_mc 0x20\n  startlan 1\n    addr %s %d\n    priv_limit admin\n    allowed_auths_admin md5\n    guid a123456789abcdefa123456789abcdef\n  endlan\n", o.Addr, o.Port)
	if o.StartCmd != "" {
		fmt.Fprintf(&lan, "  startcmd %q\n  startnow false\n  poweroff_wait 5\n  kill_wait 5\n", o.StartCmd)
	} else {
		script := filepath.Join(dir, "chassis")
		// ipmi_sim calls it as `get power` (answer power:N) and `set power N`.
		body := "#!/bin/sh\nst=" + filepath.Join(dir, "power") + "\ncase \"$1\" in\n" +
			"get) echo \"power:$(cat $st 2>/dev/null || echo 0)\" ;;\n" +
			"set) shift; while [ $# -gt 1 ]; do [ \"$1\" = power ] && echo \"$2\" >$st; shift 2; done ;;\nesac\n"
		if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
			return nil, err
		}
		fmt.Fprintf(&lan, "  chassis_control %q\n", script)
	}
	if o.Serial != 0 {
		fmt.Fprintf(&lan, "  serial 15 127.0.0.1 %d codec VM\n", o.Serial)
	}
	if o.SOL != "" {
		fmt.Fprintf(&lan, "  sol %q 115200\n", o.SOL)
	}
	fmt.Fprintf(&lan, "  user 2 true %q %q admin 10 md5\n", o.User, o.Password)
	emu := "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 0x09 0x08 0x9f 0x1291 0xf02\nmc_enable 0x20\n"
	if o.Sensors {
		emu += sensorEmu(1, 0x01, 1, "CPU Temp", 42) + sensorEmu(2, 0x04, 18, "Fan 1", 30)
	}
	for name, data := range map[string]string{"lan.conf": lan.String(), "sim.emu": emu} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return nil, err
		}
	}
	args := []string{"ipmi_sim", "-n", "-p", "-c", filepath.Join(dir, "lan.conf"), "-f", filepath.Join(dir, "sim.emu"), "-s", dir}
	if o.NetNS != "" {
		args = append([]string{"ip", "netns", "exec", o.NetNS}, args...)
	}
	log, err := os.Create(filepath.Join(dir, "sim.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	b.cmd = exec.Command(args[0], args[1:]...)
	b.cmd.Dir = dir
	b.cmd.Stdout, b.cmd.Stderr = log, log
	// A test binary killed outright takes its BMCs with it.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		return nil, err
	}
	go b.cmd.Wait() //nolint:errcheck // reaped here; Stop only signals
	deadline := time.Now().Add(10 * time.Second)
	for !udpBound(b.cmd.Process.Pid, o.Addr, o.Port) {
		if time.Now().After(deadline) {
			b.Stop()
			out, _ := os.ReadFile(filepath.Join(dir, "sim.log"))
			return nil, fmt.Errorf("ipmi_sim did not listen on %s:%d within 10s: %s", o.Addr, o.Port, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return b, nil
}

// StartBMCs starts n BMCs on the addresses addr(i), in parallel, and stops
// them all when the test ends. For benchmarks: at scale the per-instance
// test directories are one temporary tree.
func StartBMCs(t testing.TB, n int, addr func(i int) string, o BMCOptions) []*BMC {
	t.Helper()
	_, err := exec.LookPath("ipmi_sim")
	Need(t, "ipmi_sim (Debian openipmi) is not installed", err == nil)
	root := t.TempDir()
	out := make([]*BMC, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			oi := o
			oi.Addr = addr(i)
			dir := filepath.Join(root, fmt.Sprint(i))
			if err := os.Mkdir(dir, 0o755); err != nil {
				errs <- err
				return
			}
			b, err := startBMC(dir, oi)
			out[i] = b
			errs <- err
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	t.Cleanup(func() {
		for _, b := range out {
			if b != nil {
				b.Stop()
			}
		}
	})
	if first != nil {
		t.Fatal(first)
	}
	return out
}

// Stop ends ipmi_sim and what it started (a VM), by their PIDs. `ip netns
// exec` execs, so the PID started is ipmi_sim's own.
func (b *BMC) Stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	pids := descendants(b.cmd.Process.Pid)
	_ = b.cmd.Process.Kill()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []int {
	var out []int
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	for _, f := range strings.Fields(string(data)) {
		var child int
		if _, err := fmt.Sscan(f, &child); err == nil {
			out = append(out, child)
			out = append(out, descendants(child)...)
		}
	}
	return out
}

// Power is the power state the chassis script keeps: "on" or "off".
func (b *BMC) Power() string {
	data, _ := os.ReadFile(filepath.Join(b.Dir, "power"))
	if strings.TrimSpace(string(data)) == "1" {
		return "on"
	}
	return "off"
}

// SetPower sets the power state the chassis script reports.
func (b *BMC) SetPower(on bool) error {
	v := "0\n"
	if on {
		v = "1\n"
	}
	return os.WriteFile(filepath.Join(b.Dir, "power"), []byte(v), 0o644)
}

// udpBound reports whether some process listens on addr:port (UDP, IPv4)
// in the network namespace of pid, from /proc/PID/net/udp, without sending
// it anything.
func udpBound(pid int, addr string, port int) bool {
	ip := net.ParseIP(addr).To4()
	if ip == nil {
		return false
	}
	// /proc/net/udp prints the address as the little-endian u32 in hex.
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], port)
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/udp", pid))
	if err != nil {
		return false
	}
	return strings.Contains(string(data), " "+want+" ")
}

// sensorEmu is the ipmi_sim commands for one threshold sensor: its full
// sensor record (SDR type 01h) and a reading. unit is an IPMI unit code
// (1 = degrees C, 18 = RPM); for RPM the reading is scaled by M = 100.
func sensorEmu(num, sensorType, unit byte, name string, raw byte) string {
	m := byte(1)
	if unit == 18 {
		m = 100
	}
	body := []byte{
		0x20, 0x00, num, // owner, LUN, number
		0x07, 0x01, // entity: system board, instance 1
		0x41,             // initialization: scanning on, default scanning on
		0x00,             // capabilities
		sensorType,       // sensor type
		0x01,             // event/reading type: threshold
		0, 0, 0, 0, 0, 0, // masks
		0x00, unit, 0x00, // unsigned, base unit, no modifier
		0x00,    // linear
		m, 0x00, // M, tolerance
		0x00, 0x00, 0x00, // B, accuracy
		0x00,          // R and B exponents
		0x00, 0, 0, 0, // analog flags, nominal, normal max, normal min
		0xff, 0x00, // sensor maximum, minimum
		0, 0, 0, 0, 0, 0, // thresholds
		0, 0, // hysteresis
		0, 0, 0, // reserved, OEM
		0xc0 | byte(len(name)),
	}
	body = append(body, name...)
	rec := append([]byte{num, 0x00, 0x51, 0x01, byte(len(body))}, body...)
	var s strings.Builder
	s.WriteString("main_sdr_add 0x20")
	for _, c := range rec {
		fmt.Fprintf(&s, " 0x%02x", c)
	}
	fmt.Fprintf(&s, "\nsensor_add 0x20 0 %d 0x%02x 0x01\nsensor_set_value 0x20 0 %d %d 0\n", num, sensorType, num, raw)
	return s.String()
}

// Pause stops ipmi_sim (SIGSTOP) for d, as a BMC that stops answering for
// a while.
func (b *BMC) Pause(d time.Duration) {
	_ = b.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(d)
	_ = b.cmd.Process.Signal(syscall.SIGCONT)
}
