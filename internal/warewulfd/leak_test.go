package warewulfd

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// manyNodes is a nodes.conf of n nodes n0001... with MACs 52:54:00:00:HH:LL,
// addresses from 10.1.0.1 and the shipped overlays hostname and hosts
// (hosts reads every node, as a real cluster's does).
func manyNodes(n int, comment string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "nodeprofiles:\n  default:\n    comment: %q\n    runtime overlay: [hosts]\n    system overlay: [hostname]\nnodes:\n", comment)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  n%04d:\n    profiles: [default]\n    image name: img\n    network devices:\n      default: {hwaddr: \"52:54:00:00:%02x:%02x\", ipaddr: 10.1.%d.%d, netmask: 255.255.0.0}\n",
			i, i>>8, i&0xff, i/250, i%250+1)
	}
	return b.String()
}

func manyMAC(i int) string { return fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff) }

// heapAfterGC is the live heap, in bytes, after a full collection.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// vmRSS is the process's resident set in KiB (-1 if unknown).
func vmRSS() int64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// TestReloadMemoryFlat: 200 reloads of a 300-node nodes.conf, each followed
// by overlay requests (which bring the node's overlays up to date with the
// real builder), leave the live heap where it was after the first 20. A
// Builder kept per loaded configuration grew it by megabytes per reload.
func TestReloadMemoryFlat(t *testing.T) {
	testenv.Long(t, "200 reloads with overlay builds")
	const nodes = 300
	e := newEnv(t, envOptions{built: true, quiet: true, nodesConf: manyNodes(nodes, "start")})
	get := func(path string) {
		resp, err := http.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
	}
	var base uint64
	var baseRSS int64
	for i := 1; i <= 200; i++ {
		if err := e.srv.Reload(); err != nil {
			t.Fatal(err)
		}
		mac := manyMAC(i%nodes + 1)
		get("/system/" + mac)
		get("/runtime/" + mac)
		switch i {
		case 20:
			base, baseRSS = heapAfterGC(), vmRSS()
			t.Logf("after %d reloads: heap %d KiB, RSS %d KiB", i, base>>10, baseRSS)
		case 200:
			now, rss := heapAfterGC(), vmRSS()
			t.Logf("after %d reloads: heap %d KiB, RSS %d KiB", i, now>>10, rss)
			if grow := int64(now) - int64(base); grow > 8<<20 {
				t.Errorf("the heap grew by %d KiB over 180 reloads (from %d KiB): something keeps every loaded state", grow>>10, base>>10)
			}
			if grow := rss - baseRSS; grow > 32<<10 {
				t.Errorf("RSS grew by %d KiB over 180 reloads (from %d KiB)", grow, baseRSS)
			}
		}
	}
}
