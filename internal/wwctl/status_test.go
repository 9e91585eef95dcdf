package wwctl

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/warewulfd"
)

func TestNodeStatus(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	report := warewulfd.StatusReport{Time: now, Nodes: []warewulfd.NodeStatus{
		{Node: "n1", Stage: "runtime", Time: now.Add(-75 * time.Second), IP: "10.0.0.1"},
		{Node: "n2"},
		{Node: "n3", Stage: "image", Time: now.Add(-3 * time.Hour), IP: "10.0.0.3"},
	}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != warewulfd.StatusPath {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(report)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	dir := t.TempDir()
	file, err := config.WriteSandbox(dir, config.SandboxOptions{Port: ln.Addr().(*net.TCPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		root := NewRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(append([]string{"--config", file, "node", "status"}, args...))
		err := root.Execute()
		return out.String(), err
	}
	out, err := run()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NODE  STAGE    LAST SEEN  FROM", "n1    runtime  1m15s ago  10.0.0.1", "n2    -        never      -", "n3    image    3h00m ago  10.0.0.3"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	out, err = run("-o", "json", "n[1-2]")
	if err != nil {
		t.Fatal(err)
	}
	var got warewulfd.StatusReport
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Nodes) != 2 || got.Nodes[0].Stage != "runtime" {
		t.Errorf("json: %v\n%s", err, out)
	}
	// --stale: nodes silent for longer than the duration, or never seen.
	out, err = run("--stale", "1h")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "n1 ") || !strings.Contains(out, "n2 ") || !strings.Contains(out, "n3 ") ||
		!strings.HasSuffix(out, "\n2 of 3 nodes not heard from for more than 1h0m0s\n") {
		t.Errorf("--stale 1h:\n%s", out)
	}
	out, err = run("--stale", "1m", "-o", "json", "n1")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Nodes) != 1 || got.Nodes[0].Node != "n1" {
		t.Errorf("--stale 1m n1: %v\n%s", err, out)
	}
	out, err = run("--stale", "5h", "-o", "json", "n1")
	if err != nil || !strings.Contains(out, `"nodes": []`) {
		t.Errorf("--stale 5h n1: %v\n%s", err, out)
	}
	for _, bad := range []string{"0s", "-5m", "soon"} {
		if _, err := run("--stale", bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("--stale %s: %v", bad, err)
		}
	}
	if _, err := run("-o", "yaml"); err == nil || !strings.Contains(err.Error(), `"yaml"`) {
		t.Errorf("bad --output: %v", err)
	}
	srv.Close()
	if _, err := run(); err == nil || !strings.Contains(err.Error(), "not answering") || !strings.Contains(err.Error(), "saved no node status") {
		t.Errorf("server down, no status file: %v", err)
	}
}

// With warewulfd stopped, `wwctl node status` shows what it last saved,
// and says so on stderr.
func TestNodeStatusSaved(t *testing.T) {
	file, err := config.WriteSandbox(t.TempDir(), config.SandboxOptions{Port: closedPort(t)})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{cfg.NodesConf(), cfg.StatusFile()} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(cfg.NodesConf(), []byte("nodes:\n  n1: {}\n  n2: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	seen := time.Now().UTC().Add(-10 * time.Minute).Format(time.RFC3339)
	status := `{"version": 1, "nodes": [{"node": "n1", "stage": "runtime", "time": "` + seen + `", "ip": "10.0.0.1"}, {"node": "gone", "stage": "image", "time": "` + seen + `", "ip": "10.0.0.9"}]}`
	if err := os.WriteFile(cfg.StatusFile(), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, error) {
		root := NewRoot()
		var out, errOut bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetArgs(append([]string{"--config", file, "node", "status"}, args...))
		err := root.Execute()
		return out.String(), errOut.String(), err
	}
	out, errOut, err := run()
	if err != nil {
		t.Fatal(err)
	}
	// A slow machine may take a second or two to get here.
	for _, want := range []string{`n1    runtime  10m0\ds ago  10\.0\.0\.1`, `n2    -        never       -`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "gone") {
		t.Errorf("a node not in nodes.conf is listed:\n%s", out)
	}
	if !strings.Contains(errOut, "not answering") || !strings.Contains(errOut, cfg.StatusFile()) {
		t.Errorf("stderr does not say where the status came from: %q", errOut)
	}
	out, _, err = run("--stale", "5m", "-o", "json")
	var got warewulfd.StatusReport
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || len(got.Nodes) != 2 {
		t.Errorf("--stale 5m -o json: %v\n%s", err, out)
	}
	// Upstream's selection and order flags.
	for _, c := range []struct {
		args []string
		want string // the nodes, in order
	}{
		{nil, "n1 n2"},
		{[]string{"--unknown"}, "n2"},
		{[]string{"-t", "300"}, ""},
		{[]string{"--time", "900"}, "n1"},
		{[]string{"-r"}, "n2 n1"},
		{[]string{"--last"}, "n1 n2"},
		{[]string{"-l", "-r"}, "n2 n1"},
	} {
		out, _, err := run(append(c.args, "-o", "json")...)
		var got warewulfd.StatusReport
		if err != nil || json.Unmarshal([]byte(out), &got) != nil {
			t.Fatalf("%v: %v\n%s", c.args, err, out)
		}
		var names []string
		for _, n := range got.Nodes {
			names = append(names, n.Node)
		}
		if strings.Join(names, " ") != c.want {
			t.Errorf("%v: got %q, want %q", c.args, names, c.want)
		}
	}
	if _, _, err := run("--update", "500", "--interval", "1s"); err == nil {
		t.Error("--update with --interval: no error")
	}
	// A broken file is an error naming it, and stays as it was.
	if err := os.WriteFile(cfg.StatusFile(), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(); err == nil || !strings.Contains(err.Error(), cfg.StatusFile()) {
		t.Errorf("broken status file: %v", err)
	}
	if data, _ := os.ReadFile(cfg.StatusFile()); string(data) != "{" {
		t.Errorf("status file changed: %q", data)
	}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestServerStatusNotRunning(t *testing.T) {
	file, err := config.WriteSandbox(t.TempDir(), config.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"status", "stop", "reload"} {
		root := NewRoot()
		root.SetOut(&bytes.Buffer{})
		root.SetArgs([]string{"--config", file, "server", verb})
		err := root.Execute()
		if err == nil { // "not running", or systemctl's own words where systemd runs
			t.Errorf("server %s: no error", verb)
		}
		if ec, ok := err.(exitCoder); verb == "status" && (!ok || ec.ExitCode() != 3) {
			t.Errorf("server status: exit code %v, want 3", err)
		}
	}
}
