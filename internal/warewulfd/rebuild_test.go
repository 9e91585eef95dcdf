package warewulfd

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
	"github.com/warewulf-ng/warewulf/internal/safefile"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

func rebuildNodes(cluster string) string {
	return fmt.Sprintf(`nodeprofiles:
  default:
    runtime overlay: [hosts, issue]
    system overlay: [hostname, issue]
nodes:
  n1:
    profiles: [default]
    cluster name: %s
    image name: img
    network devices:
      default: {hwaddr: "52:54:00:00:00:01", ipaddr: 10.1.0.1, netmask: 255.255.0.0}
  n2:
    profiles: [default]
    image name: img
    network devices:
      default: {hwaddr: "52:54:00:00:00:02", ipaddr: 10.1.0.2, netmask: 255.255.0.0}
`, cluster)
}

// TestNoFailureDuringRebuild is the README's workflow under load: while
// nodes.conf changes and `wwctl overlay build` runs (a Builder of its own,
// as in another process) again and again, requests for the system and
// runtime overlays of the changed node keep answering 200, old or new
// bytes, never 404.
func TestNoFailureDuringRebuild(t *testing.T) {
	testenv.Long(t, "a request loop against a rebuild loop for 6 s")
	e := newEnv(t, envOptions{built: true, quiet: true, nodesConf: rebuildNodes("c0")})
	wwctl := func() {
		db, err := node.Load(e.cfg.NodesConf())
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := overlay.NewBuilder(e.cfg, overlay.Options{}).Build(db, nil); err != nil {
			t.Error(err)
		}
	}
	wwctl()
	var ok, failed atomic.Int64
	var firstFail atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, stage := range []string{"system", "runtime", "system", "runtime"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(e.base + "/" + stage + "/52:54:00:00:00:01")
				if err != nil {
					failed.Add(1)
					firstFail.CompareAndSwap(nil, err.Error())
					continue
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || n == 0 {
					failed.Add(1)
					firstFail.CompareAndSwap(nil, fmt.Sprintf("%s: %s, %d bytes", stage, resp.Status, n))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	cycles := 0
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); cycles++ {
		if err := safefile.WriteFile(e.cfg.NodesConf(), []byte(rebuildNodes(fmt.Sprintf("c%d", cycles+1))), 0o640); err != nil {
			t.Fatal(err)
		}
		wwctl()
		time.Sleep(150 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d rebuilds, %d requests answered 200, %d failed", cycles, ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed during rebuilds; first: %v", failed.Load(), ok.Load()+failed.Load(), firstFail.Load())
	}
	if ok.Load() == 0 {
		t.Error("no request succeeded")
	}
}

// TestAutobuildFailureKeepsOverlay: with autobuild on, a node whose
// overlay no longer builds (a template fails on its new tag) is sent its
// previous overlay, with one warning, and the failing build is not run
// again per request.
func TestAutobuildFailureKeepsOverlay(t *testing.T) {
	conf := func(tags string) string {
		return `nodes:
  n1:
    image name: img
    system overlay: [hostname, boom]
    runtime overlay: [hosts]` + tags + `
    network devices:
      default: {hwaddr: "52:54:00:00:00:01", ipaddr: 10.1.0.1, netmask: 255.255.0.0}
`
	}
	e := newEnv(t, envOptions{built: true, nodesConf: conf("")})
	writeFile(t, filepath.Join(e.cfg.SiteOverlayDir(), "boom", "rootfs", "etc", "boom.ww"),
		[]byte("{{ if .Tags.boom }}{{ .NoSuchField }}{{ end }}ok\n"))
	resp, before := e.get("/system/52:54:00:00:00:01")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("before: %s\n%s", resp.Status, e.logs.String())
	}
	writeFile(t, e.cfg.NodesConf(), []byte(conf("\n    tags: {boom: \"1\"}")))
	e.awaitLog(t, "loaded 1 nodes")
	for i := 0; i < 5; i++ {
		resp, after := e.get("/system/52:54:00:00:00:01")
		if resp.StatusCode != http.StatusOK || !bytes.Equal(after, before) {
			t.Fatalf("request %d after the failed build: %s, same bytes %v\n%s", i, resp.Status, bytes.Equal(after, before), e.logs.String())
		}
		time.Sleep(cacheTTL / 2) // past the lookup cache, so each asks again
	}
	e.awaitLog(t, "level=warning", "building the system overlay of n1 failed", "boom")
	if n := strings.Count(e.logs.String(), "building the system overlay of n1 failed"); n != 1 {
		t.Errorf("the failing build ran %d times for one nodes.conf, want once:\n%s", n, e.logs.String())
	}
}
