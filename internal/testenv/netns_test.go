package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A namespace whose run's process is gone is deleted; one whose process
// lives (this one's parent, or this run's own) is kept.
func TestRemoveStaleNetns(t *testing.T) {
	Need(t, "needs root", os.Geteuid() == 0)
	_, err := exec.LookPath("ip")
	Need(t, "needs ip (iproute2)", err == nil)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("%sstale-%d-1", netnsPrefix, dead.Process.Pid)
	alive := fmt.Sprintf("%salive-%d-1", netnsPrefix, os.Getppid())
	for _, name := range []string{stale, alive} {
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
		Run(t, "ip", "netns", "add", name)
	}
	own := Netns(t, "own")
	Veth(t, own, "a0", Netns(t, "peer"), "b0")
	removeStaleNetns()
	for name, want := range map[string]bool{stale: false, alive: true, own: true} {
		if _, err := os.Stat(filepath.Join("/run/netns", name)); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", name, err == nil, want)
		}
	}
}
