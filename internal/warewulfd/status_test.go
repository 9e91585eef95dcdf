package warewulfd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/config"
)

const statusNodes = `nodes:
  n1:
    image name: img
    network devices:
      default:
        hwaddr: 52:54:00:00:00:01
  n2:
    image name: img
    network devices:
      default:
        hwaddr: 52:54:00:00:00:02
`

// statusSandbox writes a sandbox warewulf.conf and nodes.conf and returns
// the config file.
func statusSandbox(t *testing.T, nodes string) (string, *config.Config) {
	t.Helper()
	file, err := config.WriteSandbox(t.TempDir(), config.SandboxOptions{Ipaddr: "127.0.0.1", Netmask: "255.0.0.0", Port: 9873})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg.TFTP.Enabled, cfg.DHCP.Enabled = false, false
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, data)
	writeFile(t, cfg.NodesConf(), []byte(nodes))
	return file, cfg
}

// runningServer is a warewulfd on 127.0.0.1 that a test can stop and start
// again on the same sandbox.
type runningServer struct {
	*Server
	base string
	logs *syncBuffer
	stop func() // graceful shutdown; waits for Run to return
}

func startServer(t *testing.T, file string) *runningServer {
	t.Helper()
	logs := &syncBuffer{}
	log := logrus.New()
	log.SetOutput(logs)
	srv, err := New(Options{ConfigFile: file, Provider: &fileProvider{}, HTTPAddr: "127.0.0.1:0", PollInterval: 100 * time.Millisecond, Log: log, NoDHCP: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &runningServer{Server: srv, base: "http://" + srv.HTTPAddr().String(), logs: logs, stop: stop}
}

func (r *runningServer) boot(t *testing.T, mac string) {
	t.Helper()
	resp, err := http.Get(r.base + "/ipxe/" + mac)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/ipxe/%s: %s", mac, resp.Status)
	}
}

// seen waits for the server to have recorded a node (the record is made
// when the handler returns, just after the client has its answer).
func (r *runningServer) seen(t *testing.T, name string) NodeStatus {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for _, ns := range r.statusReport().Nodes {
			if ns.Node == name && ns.Stage != "" {
				return ns
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not recorded: %+v", name, r.statusReport().Nodes)
		}
	}
}

func fetchStatus(t *testing.T, r *runningServer) map[string]NodeStatus {
	t.Helper()
	rep, err := FetchStatus(context.Background(), r.base+StatusPath)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]NodeStatus{}
	for _, ns := range rep.Nodes {
		m[ns.Node] = ns
	}
	return m
}

func TestStatusSurvivesRestart(t *testing.T) {
	file, cfg := statusSandbox(t, statusNodes)
	srv := startServer(t, file)
	srv.boot(t, "52:54:00:00:00:01")
	srv.boot(t, "52:54:00:00:00:02")
	n1, n2 := srv.seen(t, "n1"), srv.seen(t, "n2")
	srv.stop() // the default save interval (5 s) has not passed: shutdown saves
	if _, err := os.Stat(cfg.StatusFile()); err != nil {
		t.Fatalf("no status file after shutdown: %v", err)
	}

	srv = startServer(t, file)
	got := fetchStatus(t, srv)
	for _, want := range []NodeStatus{n1, n2} {
		g := got[want.Node]
		if g.Stage != "ipxe" || g.IP != "127.0.0.1" || !g.Time.Equal(want.Time) {
			t.Errorf("after restart %s: %+v, want %+v", want.Node, g, want)
		}
	}
	if !strings.Contains(srv.logs.String(), "restored the status of 2 nodes") {
		t.Errorf("log: %s", srv.logs.String())
	}
	srv.stop()

	// A node no longer in nodes.conf is not reported, and the next save
	// drops it from the file.
	writeFile(t, cfg.NodesConf(), []byte(statusNodes[:strings.Index(statusNodes, "  n2:")]))
	srv = startServer(t, file)
	got = fetchStatus(t, srv)
	if len(got) != 1 || !got["n1"].Time.Equal(n1.Time) {
		t.Errorf("after removing n2: %+v", got)
	}
	srv.boot(t, "52:54:00:00:00:01")
	srv.seen(t, "n1")
	srv.stop()
	data, err := os.ReadFile(cfg.StatusFile())
	if err != nil {
		t.Fatal(err)
	}
	var sf statusFile
	if err := json.Unmarshal(data, &sf); err != nil || sf.Version != statusFileVersion || len(sf.Nodes) != 1 || sf.Nodes[0].Node != "n1" {
		t.Errorf("status file: %v\n%s", err, data)
	}
}

func TestCorruptStatusFile(t *testing.T) {
	for name, content := range map[string]string{
		"truncated":     `{"version":1,"nodes":[{"node":"n1","stage":"ipxe","ti`,
		"not json":      "\x00\x01garbage",
		"other version": `{"version":99,"nodes":[]}`,
		"bad stage":     `{"version":1,"nodes":[{"node":"n1","stage":"bios","time":"2026-01-02T03:04:05Z","ip":"10.0.0.1"}]}`,
		"trailing data": `{"version":1,"nodes":[]} {}`,
	} {
		t.Run(name, func(t *testing.T) {
			file, cfg := statusSandbox(t, statusNodes)
			writeFile(t, cfg.StatusFile(), []byte(content))
			srv := startServer(t, file)
			for _, ns := range fetchStatus(t, srv) {
				if ns.Stage != "" {
					t.Errorf("restored from a corrupt file: %+v", ns)
				}
			}
			logs := srv.logs.String()
			if n := strings.Count(logs, "level=warning"); n != 1 || !strings.Contains(logs, "node status not restored") || !strings.Contains(logs, cfg.StatusFile()) {
				t.Errorf("want one warning naming the file, got:\n%s", logs)
			}
			// It still records and saves over the broken file.
			srv.boot(t, "52:54:00:00:00:01")
			srv.seen(t, "n1")
			srv.stop()
			if m, err := readStatusFile(cfg.StatusFile()); err != nil || m["n1"].Stage != "ipxe" {
				t.Errorf("after a boot: %v %+v", err, m)
			}
		})
	}
}

func TestUnreadableStatusFile(t *testing.T) {
	old := statusSaveInterval
	statusSaveInterval = 20 * time.Millisecond
	t.Cleanup(func() { statusSaveInterval = old })
	file, cfg := statusSandbox(t, statusNodes)
	if err := os.MkdirAll(cfg.StatusFile(), 0o755); err != nil { // a directory: open works, read fails
		t.Fatal(err)
	}
	srv := startServer(t, file)
	if n := strings.Count(srv.logs.String(), "level=warning"); n != 1 {
		t.Errorf("want one warning, got:\n%s", srv.logs.String())
	}
	// Saving fails too (a directory is in the way): one warning, not one
	// per tick, and the daemon keeps serving.
	srv.stop()
	srv = startServer(t, file)
	srv.boot(t, "52:54:00:00:00:01")
	time.Sleep(100 * time.Millisecond)
	srv.boot(t, "52:54:00:00:00:02")
	time.Sleep(100 * time.Millisecond)
	srv.stop()
	if n := strings.Count(srv.logs.String(), "saving node status"); n != 1 {
		t.Errorf("want one save warning, got:\n%s", srv.logs.String())
	}
}

func TestStatusFileWrittenOnlyOnChange(t *testing.T) {
	old := statusSaveInterval
	statusSaveInterval = 20 * time.Millisecond
	t.Cleanup(func() { statusSaveInterval = old })
	file, cfg := statusSandbox(t, statusNodes)
	srv := startServer(t, file)
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(cfg.StatusFile()); !os.IsNotExist(err) {
		t.Fatalf("status file written with nothing seen: %v", err)
	}
	srv.boot(t, "52:54:00:00:00:01")
	srv.seen(t, "n1")
	var first fileStamp
	for deadline := time.Now().Add(2 * time.Second); !first.ok; time.Sleep(10 * time.Millisecond) {
		if first = stampOf(cfg.StatusFile()); !first.ok && time.Now().After(deadline) {
			t.Fatal("status file not written within 2 s of a request")
		}
	}
	time.Sleep(200 * time.Millisecond) // ten ticks
	// Every write renames a new file into place: a new inode.
	if now := stampOf(cfg.StatusFile()); now != first {
		t.Errorf("status file rewritten with nothing new: %+v, was %+v", now, first)
	}
	srv.stop() // nor on shutdown
	if now := stampOf(cfg.StatusFile()); now != first {
		t.Errorf("status file rewritten at shutdown with nothing new: %+v, was %+v", now, first)
	}
	// A restart with nothing new leaves it alone too.
	srv = startServer(t, file)
	time.Sleep(100 * time.Millisecond)
	srv.stop()
	if now := stampOf(cfg.StatusFile()); now != first {
		t.Errorf("status file rewritten after a restart with nothing new: %+v, was %+v", now, first)
	}
	srv = startServer(t, file)
	srv.boot(t, "52:54:00:00:00:02")
	srv.seen(t, "n2")
	srv.stop()
	if now := stampOf(cfg.StatusFile()); now == first {
		t.Error("status file not rewritten after a new request")
	}
	if m, err := readStatusFile(cfg.StatusFile()); err != nil || m["n1"].Stage != "ipxe" || m["n2"].Stage != "ipxe" {
		t.Errorf("status file: %v %+v", err, m)
	}
}

// BenchmarkStatusSave: one save of the status of 10,000 nodes, what the
// background writer does at most every statusSaveInterval during a boot
// storm. Requests wait on the book's lock only while it is copied
// (lock-µs); encoding and the fsync'd write run without it.
func BenchmarkStatusSave(b *testing.B) {
	const nodes = 10000
	var conf strings.Builder
	conf.WriteString("nodes:\n")
	for i := range nodes {
		fmt.Fprintf(&conf, "  s%05d: {}\n", i)
	}
	file, err := config.WriteSandbox(b.TempDir(), config.SandboxOptions{Ipaddr: "127.0.0.1", Netmask: "255.0.0.0"})
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		b.Fatal(err)
	}
	writeFile(b, cfg.NodesConf(), []byte(conf.String()))
	log := logrus.New()
	log.SetOutput(io.Discard)
	s, err := New(Options{ConfigFile: file, Log: log})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range nodes {
		s.status.record(fmt.Sprintf("s%05d", i), StageRuntime, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), now)
	}
	var saving, locked time.Duration
	b.ResetTimer()
	for i := range b.N {
		s.status.record("s00000", StageRuntime, "10.1.0.1", now.Add(time.Duration(i)))
		start := time.Now()
		s.saveStatus()
		saving += time.Since(start)
		// The copy made under the lock, timed on its own.
		start = time.Now()
		s.status.mu.Lock()
		cp := make([]NodeStatus, 0, len(s.status.m))
		for _, ns := range s.status.m {
			cp = append(cp, ns)
		}
		s.status.mu.Unlock()
		locked += time.Since(start)
	}
	b.StopTimer()
	fi, err := os.Stat(cfg.StatusFile())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(saving.Microseconds())/float64(b.N)/1000, "ms/save")
	b.ReportMetric(float64(locked.Microseconds())/float64(b.N), "lock-µs")
	b.ReportMetric(float64(fi.Size())/1024, "file-KB")
	if m, err := readStatusFile(cfg.StatusFile()); err != nil || len(m) != nodes {
		b.Errorf("read back: %v, %d nodes", err, len(m))
	}
}
