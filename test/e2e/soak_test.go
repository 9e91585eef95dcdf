package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// soakFor is how long TestSoakRebuild changes nodes and rebuilds overlays.
const soakFor = 2 * time.Minute

// TestSoakRebuild: a node boots, then for two minutes nodes.conf changes
// (the node's tag and cluster name, another node's comment) and `wwctl overlay build`
// rebuilds every overlay, again and again, while the node's wwclient keeps
// fetching its runtime overlay (every updateInterval seconds) and a loop
// on the provisioning network fetches the node's system overlay. Neither
// side sees a single error, and the node still follows changes after.
func TestSoakRebuild(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	n := clusterNode("soak1")
	v := bootVM(t, e.ns, n.name, n.mac, vmOpts{})
	v.bootTimes(t, "soak-busybox", busyboxBoot)
	consoleFrom, logFrom := v.p.out.len(), e.wwd.out.len()

	// The system overlay, over and over, as nodes booting meanwhile would.
	type counts struct {
		ok, failed int
		first      string
	}
	stop, done := make(chan struct{}), make(chan counts, 1)
	go func() {
		var c counts
		url := fmt.Sprintf("http://%s:%d/system/%s", controllerIP, e.cfg.Warewulf.Port, n.mac)
		for {
			select {
			case <-stop:
				done <- c
				return
			default:
			}
			if out, err := runErr(nil, e.ns.exec("busybox", "wget", "-q", "-O", "/dev/null", url)...); err != nil {
				if c.failed++; c.first == "" {
					c.first = fmt.Sprintf("%v %s", err, strings.TrimSpace(out))
				}
			} else {
				c.ok++
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	stopLoop := sync.OnceValue(func() counts { close(stop); return <-done })
	defer stopLoop()

	start, cycles := time.Now(), 0
	for time.Since(start) < soakFor {
		cycles++
		last := fmt.Sprintf("soak%d", cycles)
		// The tag changes its runtime overlay, the cluster name (in
		// /etc/issue) its system overlay.
		e.wwctl(t, "node", "set", n.name, "--tagadd", "marker="+last, "--cluster", last)
		e.wwctl(t, "node", "set", "n3", "--comment", last)
		e.buildOverlays(t)
		time.Sleep(time.Second)
	}
	sys := stopLoop()
	t.Logf("%d cycles of node set + overlay build in %v; system overlay fetched %d times, %d failed",
		cycles, time.Since(start).Round(time.Second), sys.ok, sys.failed)

	// The node still follows changes: one more reaches it within an
	// interval or so.
	from := v.p.out.len()
	e.setTag(t, n.name, "marker", "after-soak")
	e.buildOverlays(t, n.name)
	v.waitAfter(t, regexp.MustCompile(`changed: .*/etc/e2e-marker`), from, 4*updateInterval*time.Second)

	// Node side: every runtime fetch applied or found nothing to change.
	console := v.p.out.since(consoleFrom)
	applied := 0
	for _, l := range console {
		switch {
		case strings.Contains(l, "runtime overlay not applied"), strings.Contains(l, "wwclient") && strings.Contains(strings.ToLower(l), "error"):
			t.Errorf("node: %s", l)
		case strings.Contains(l, "runtime overlay applied"):
			applied++
		}
	}
	// Daemon side: every request of the node answered 200, none cut, no
	// build failed.
	status := regexp.MustCompile(`node=` + n.name + ` stage=(\w+) status=(\d+)`)
	runtimeOK := 0
	for _, l := range e.wwd.out.since(logFrom) {
		m := status.FindStringSubmatch(l)
		switch {
		case m != nil && m[2] != "200",
			strings.Contains(l, n.name) && (strings.Contains(l, "level=error") || strings.Contains(l, "failed")):
			t.Errorf("warewulfd: %s", l)
		case m != nil && m[1] == "runtime":
			runtimeOK++
		}
	}
	t.Logf("the node fetched its runtime overlay %d times (%d changed something); %d cycles", runtimeOK, applied, cycles)
	fmt.Printf("SOAK node=%s cycles=%d runtime-fetches=%d system-fetches=%d errors=%d\n", n.name, cycles, runtimeOK, sys.ok, sys.failed)
	if want := int(soakFor/time.Second) / updateInterval / 2; runtimeOK < want {
		t.Errorf("only %d runtime fetches in %v (interval %ds): the node stopped asking", runtimeOK, soakFor, updateInterval)
	}
	if sys.failed > 0 {
		t.Errorf("%d of %d system overlay fetches failed during the soak; first: %s", sys.failed, sys.ok+sys.failed, sys.first)
	}
	if cycles < 10 {
		t.Errorf("only %d rebuild cycles in %v", cycles, soakFor)
	}
}

// since is the lines from index from on.
func (o *output) since(from int) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if from > len(o.lines) {
		return nil
	}
	return append([]string(nil), o.lines[from:]...)
}
