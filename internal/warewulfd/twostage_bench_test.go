package warewulfd

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/image"
	"github.com/warewulf-ng/warewulf/internal/stage1"
)

// BenchmarkTwoStageStorm: 10,000 simulated two-stage nodes ask the real
// warewulfd binary for their image at the same moment, each as stage 1
// does (stage1.Download: 503 + Retry-After honoured with jitter, Range
// resume, digest checked). warewulfd holds them to a bandwidth budget. It
// reports failed nodes (goal 0), the p50/p99/max completion times, the 503
// answers, and the rate achieved against the budget.
func BenchmarkTwoStageStorm(b *testing.B) {
	const nodes = 10000
	const imageSize = 32 << 10
	// Bytes a second: well below what this machine serves unpaced to
	// 10,000 clients (about 14 MB/s of these images: the SYN backlog, not
	// the CPU, spreads the arrivals), so the budget sets the pace and
	// refuses. It admits 8e6/fairShare (3) transfers at once.
	budget := "8M"
	conf, cfg, port := benchSandbox(b, "127.0.0.1", func(c *config.Config) {
		c.Warewulf.ImageCompression = "zstd"
		c.Pacing.ImageBandwidth = budget
	})
	writeFile(b, cfg.NodesConf(), []byte("nodes:\n  n1:\n    image name: img\n    network devices:\n      default:\n        hwaddr: 52:54:00:00:00:01\n        ipaddr: 127.0.0.11\n"))
	rootfs := cfg.ImageRootfs("img")
	writeFile(b, filepath.Join(rootfs, "boot", "vmlinuz-6.1.0-test"), randomBytes(b, 16<<10))
	writeFile(b, filepath.Join(rootfs, "usr", "share", "payload.bin"), randomBytes(b, imageSize))
	if _, err := image.Build(context.Background(), cfg, "img", image.BuildOptions{}); err != nil {
		b.Fatal(err)
	}
	a, err := image.BuiltArtifacts(cfg, "img", "")
	if err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(a.Image)
	base, _ := startWarewulfd(b, conf, fmt.Sprintf("127.0.0.1:%d", port), nil)
	url := base + "/image/52:54:00:00:00:01"
	bw, _ := config.ParseBandwidth(budget)

	for range b.N {
		tr := &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: nodes,
			DisableCompression:  true,
		}
		client := &http.Client{Transport: tr}
		var waits, resumes, failed atomic.Int64
		var firstErr atomic.Value
		done := make([]time.Duration, nodes)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := stage1.NewDownload(context.Background(), client, url)
				_, err := io.Copy(io.Discard, d)
				d.Close()
				if err == nil && !d.Verified() {
					err = fmt.Errorf("no digest")
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Errorf("node %d: %w", i, err))
				}
				waits.Add(int64(d.Waits))
				resumes.Add(int64(d.Resumes))
				done[i] = time.Since(start)
			}()
		}
		wg.Wait()
		el := time.Since(start)
		tr.CloseIdleConnections()
		if err, _ := firstErr.Load().(error); err != nil {
			b.Errorf("%d nodes failed; first: %v", failed.Load(), err)
		}
		sort.Slice(done, func(i, j int) bool { return done[i] < done[j] })
		b.ReportMetric(float64(failed.Load()), "failed")
		b.ReportMetric(done[nodes/2].Seconds(), "p50-s")
		b.ReportMetric(done[nodes*99/100].Seconds(), "p99-s")
		b.ReportMetric(done[nodes-1].Seconds(), "max-s")
		b.ReportMetric(float64(waits.Load()), "503s")
		b.ReportMetric(float64(resumes.Load()), "resumes")
		rate := float64(nodes) * float64(fi.Size()) / el.Seconds()
		b.ReportMetric(rate/1e6, "MB/s")
		b.ReportMetric(rate/float64(bw), "of-budget")
		b.ReportMetric(float64(fi.Size())/1024, "image-KiB")
		b.ReportMetric(el.Seconds(), "storm-s")
		b.ReportMetric(0, "ns/op")
	}
}
