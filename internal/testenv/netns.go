package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// netnsPrefix starts the name of every namespace Netns makes; the name
// ends in -<pid>-<n>, so a later run can tell whose it was.
const netnsPrefix = "wwtest-"

var (
	netnsCount atomic.Int64
	sweepOnce  sync.Once
)

// Netns makes a network namespace with its loopback up and deletes it when
// the test ends. A run killed before its cleanups (a go test timeout)
// leaves its namespaces behind: the first call of a later run deletes
// those whose process is gone.
func Netns(t testing.TB, tag string) string {
	t.Helper()
	sweepOnce.Do(removeStaleNetns)
	name := fmt.Sprintf("%s%s-%d-%d", netnsPrefix, tag, os.Getpid(), netnsCount.Add(1))
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	Run(t, "ip", "netns", "add", name)
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Veth joins namespaces a and b with a veth pair, named ifA in a and ifB
// in b, both up. The kernel makes each end inside its namespace, so the
// names only need to be free there.
func Veth(t testing.TB, a, ifA, b, ifB string) {
	t.Helper()
	Run(t, "ip", "link", "add", ifA, "netns", a, "type", "veth", "peer", "name", ifB, "netns", b)
	Run(t, "ip", "-n", a, "link", "set", ifA, "up")
	Run(t, "ip", "-n", b, "link", "set", ifB, "up")
}

// removeStaleNetns deletes the namespaces Netns made in runs whose process
// no longer exists.
func removeStaleNetns() {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, netnsPrefix) {
			continue
		}
		f := strings.Split(name, "-")
		pid, err := strconv.Atoi(f[len(f)-2])
		if err != nil || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		exec.Command("ip", "netns", "del", name).Run()
	}
}
