package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// netns is a network namespace made for the test: a bridge with the
// controller's address, and one tap device per VM. Nothing of it is
// visible outside the namespace; del removes it all.
type netns struct {
	name   string
	bridge string
	mu     sync.Mutex
	taps   int
}

const (
	controllerIP = "10.99.0.1"
	netmask      = "255.255.255.0"
	prefix       = "10.99.0."
)

func newNetns(t testing.TB, tag string) *netns {
	t.Helper()
	n := &netns{name: fmt.Sprintf("wwe2e-%s-%d", tag, os.Getpid()), bridge: "br0"}
	runErr(nil, "ip", "netns", "del", n.name) // a leftover of a killed run
	run(t, nil, "ip", "netns", "add", n.name)
	cleanups.add(n.del)
	for _, c := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", n.bridge, "type", "bridge"},
		{"addr", "add", controllerIP + "/24", "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		run(t, nil, append([]string{"ip", "-n", n.name}, c...)...)
	}
	return n
}

// removeStaleNetns deletes the namespaces of earlier runs whose test
// binary is gone (killed with SIGKILL, so its cleanup never ran).
func removeStaleNetns() {
	out, _ := runErr(nil, "ip", "netns", "list")
	for _, l := range lines(out) {
		name := strings.Fields(l)[0]
		if !strings.HasPrefix(name, "wwe2e-") {
			continue
		}
		pid, err := strconv.Atoi(name[strings.LastIndexByte(name, '-')+1:])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		runErr(nil, "ip", "netns", "del", name)
	}
}

// tap makes a tap device on the bridge for one VM.
func (n *netns) tap(t testing.TB) string {
	t.Helper()
	n.mu.Lock()
	n.taps++
	name := fmt.Sprintf("tap%d", n.taps)
	n.mu.Unlock()
	for _, c := range [][]string{
		{"tuntap", "add", "dev", name, "mode", "tap"},
		{"link", "set", name, "master", n.bridge},
		{"link", "set", name, "up"},
	} {
		run(t, nil, append([]string{"ip", "-n", n.name}, c...)...)
	}
	return name
}

// exec prefixes argv so it runs inside the namespace. `ip netns exec`
// execs the command, so the PID we get is the command's own.
func (n *netns) exec(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", n.name}, argv...)
}

func (n *netns) del() {
	if out, err := runErr(nil, "ip", "netns", "del", n.name); err != nil && !strings.Contains(out, "No such file") {
		fmt.Fprintf(os.Stderr, "e2e: ip netns del %s: %v %s\n", n.name, err, out)
	}
}

// cleanupList runs cleanups in reverse order at the end of TestMain, for
// what outlives a single test (the shared namespace and warewulfd).
type cleanupList struct {
	mu  sync.Mutex
	fns []func()
}

var cleanups cleanupList

func (c *cleanupList) add(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, f)
}

func (c *cleanupList) run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}
