package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
)

type env struct {
	t    *testing.T
	cfg  *config.Config
	conf string // warewulf.conf
	url  string
	logs *bytes.Buffer
	mu   sync.Mutex
}

// newEnv: a sandbox with the API on, users admin/secret and reader/other,
// loopback allowed; served by httptest on 127.0.0.1.
func newEnv(t *testing.T, edit func(*config.Config)) *env {
	t.Helper()
	dir := t.TempDir()
	file, err := config.WriteSandbox(dir, config.SandboxOptions{Ipaddr: "127.0.0.1", Netmask: "255.0.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg.API.Enabled = true
	if edit != nil {
		edit(cfg)
	}
	data, _ := cfg.Marshal()
	os.WriteFile(file, data, 0o644)
	os.MkdirAll(cfg.SysconfDir(), 0o755)
	os.WriteFile(cfg.NodesConf(), []byte("nodeprofiles:\n  default: {}\nnodes: {}\n"), 0o644)
	var users strings.Builder
	users.WriteString("users:\n")
	for _, u := range [][2]string{{"admin", "secret"}, {"reader", "other"}} {
		h, _ := bcrypt.GenerateFromPassword([]byte(u[1]), bcrypt.MinCost)
		fmt.Fprintf(&users, "  - name: %s\n    password hash: %s\n", u[0], h)
	}
	os.WriteFile(cfg.AuthFile(), []byte(users.String()), 0o600)
	e := &env{t: t, cfg: cfg, conf: file, logs: &bytes.Buffer{}}
	log := logrus.New()
	log.SetOutput(syncWriter{e})
	srv := httptest.NewServer(New(func() *config.Config { return cfg }, nil, log))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

type syncWriter struct{ e *env }

func (w syncWriter) Write(p []byte) (int, error) {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	return w.e.logs.Write(p)
}

func (e *env) do(method, path, user, pass, body string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAuth(t *testing.T) {
	e := newEnv(t, nil)
	for _, c := range []struct {
		user, pass string
		want       int
	}{
		{"", "", 401}, {"admin", "Pw-XYZ", 401}, {"nobody", "secret", 401}, {"admin", "", 401},
		{"ADMIN", "secret", 401}, {"admin", "secret", 200}, {"reader", "other", 200},
	} {
		code, body := e.do("GET", "/api/nodes", c.user, c.pass, "")
		if code != c.want {
			t.Errorf("%q/%q: %d %s, want %d", c.user, c.pass, code, body, c.want)
		}
	}
	if strings.Contains(e.logs.String(), "secret") || strings.Contains(e.logs.String(), "Pw-XYZ") {
		t.Errorf("a password is in the log:\n%s", e.logs)
	}
	if !strings.Contains(e.logs.String(), `user \"admin\": wrong password`) {
		t.Errorf("the log does not say why:\n%s", e.logs)
	}
	// No auth.conf: nobody gets in.
	os.Remove(e.cfg.AuthFile())
	if code, _ := e.do("GET", "/api/nodes", "admin", "secret", ""); code != 401 {
		t.Errorf("without auth.conf: %d", code)
	}
}

func TestAllowedSubnets(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.API.AllowedSubnets = []string{"10.0.0.0/8"} })
	if code, _ := e.do("GET", "/api/nodes", "admin", "secret", ""); code != 403 {
		t.Errorf("from 127.0.0.1, only 10.0.0.0/8 allowed: %d", code)
	}
	e2 := newEnv(t, func(c *config.Config) { c.API.TLS = true })
	if code, _ := e2.do("GET", "/api/nodes", "admin", "secret", ""); code != 403 {
		t.Errorf("plain HTTP with api: tls: %d", code)
	}
	e3 := newEnv(t, func(c *config.Config) { c.API.Enabled = false })
	if code, _ := e3.do("GET", "/api/nodes", "admin", "secret", ""); code != 404 {
		t.Errorf("API off: %d", code)
	}
	if _, err := config.Parse([]byte("api:\n  allowed subnets: [\"10.0.0.0/33\"]\n")); err == nil || !strings.Contains(err.Error(), "10.0.0.0/33") {
		t.Errorf("bad subnet accepted: %v", err)
	}
}

func TestNodeCalls(t *testing.T) {
	e := newEnv(t, nil)
	a := func(method, path, body string) (int, string) { return e.do(method, path, "admin", "secret", body) }
	if code, body := a("PUT", "/api/nodes/n1", `{"node": {"profiles": ["default"], "network devices": {"default": {"hwaddr": "52:54:00:00:00:01", "ipaddr": "10.0.0.1"}}}}`); code != 200 {
		t.Fatalf("add: %d %s", code, body)
	}
	for _, c := range []struct{ method, path, body, want string }{
		{"PUT", "/api/nodes/n2", `{"node": {"network devices": {"default": {"ipaddr": "10.0.0.999"}}}}`, "10.0.0.999"},
		{"PUT", "/api/nodes/n2", `{"node": {"profiles": ["nope"]}}`, "profile 'nope' does not exist"},
		{"PUT", "/api/nodes/n2", `{"node": {"image name": "nope"}}`, "image 'nope' does not exist"},
		{"PUT", "/api/nodes/n2", `{"node": {"bogus key": 1}}`, `unknown key \"bogus key\"`},
		{"PUT", "/api/nodes/bad%20name", `{"node": {}}`, "bad name"},
		{"PUT", "/api/nodes/n2", `{"node": `, "not the JSON expected"},
		{"PUT", "/api/nodes/n2", `{}`, `no \"node\" object`},
		{"PATCH", "/api/nodes/n9", `{"node": {}}`, "n9"},
		{"DELETE", "/api/profiles/default", ``, "used by node 'n1'"},
	} {
		before, _ := os.ReadFile(e.cfg.NodesConf())
		code, body := a(c.method, c.path, c.body)
		if code < 400 || !strings.Contains(body, c.want) {
			t.Errorf("%s %s %s: %d %s, want an error naming %q", c.method, c.path, c.body, code, body, c.want)
		}
		if after, _ := os.ReadFile(e.cfg.NodesConf()); !bytes.Equal(before, after) {
			t.Errorf("%s %s: nodes.conf changed by a refused request", c.method, c.path)
		}
	}
	if code, body := a("PATCH", "/api/nodes/n1", `{"node": {"network devices": {"default": {"ipaddr": "10.0.0.2"}}}}`); code != 200 || !strings.Contains(body, `"hwaddr":"52:54:00:00:00:01"`) || !strings.Contains(body, "10.0.0.2") {
		t.Errorf("patch: %d %s", code, body)
	}
	db, err := node.Load(e.cfg.NodesConf())
	if err != nil || db.Nodes["n1"].NetDevs["default"].Ipaddr != "10.0.0.2" {
		t.Fatalf("nodes.conf after the patch: %v", err)
	}
	// Profiles: the same calls.
	if code, body := a("PUT", "/api/profiles/p2", `{"profile": {"comment": "second", "kernel": {"args": ["quiet"]}}}`); code != 200 || !strings.Contains(body, "second") {
		t.Errorf("add profile: %d %s", code, body)
	}
	if code, body := a("GET", "/api/profiles", ""); code != 200 || !strings.Contains(body, `"p2"`) || !strings.Contains(body, `"default"`) {
		t.Errorf("list profiles: %d %s", code, body)
	}
	if code, body := a("DELETE", "/api/profiles/p2", ""); code != 200 || !strings.Contains(body, "second") {
		t.Errorf("delete profile: %d %s", code, body)
	}
	if code, _ := a("GET", "/api/profiles/p2", ""); code != 404 {
		t.Errorf("deleted profile: %d", code)
	}
	if code, body := a("GET", "/api/docs", ""); code != 200 || !strings.Contains(body, `"openapi"`) || !strings.Contains(body, "/api/nodes/{id}") {
		t.Errorf("docs: %d", code)
	}
}

// TestConcurrentWrites: 25 nodes added through the API and 25 by wwctl at
// the same time all land in nodes.conf: both go through node.Update's lock.
func TestConcurrentWrites(t *testing.T) {
	e := newEnv(t, nil)
	repo, _ := filepath.Abs("../..")
	wwctl := filepath.Join(t.TempDir(), "wwctl")
	build := exec.Command("go", "build", "-tags", "containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper", "-o", wwctl, "./cmd/wwctl")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build wwctl: %v\n%s", err, out)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("c%02d", i)
			ip := fmt.Sprintf("10.1.0.%d", i+1)
			if i%2 == 0 {
				body, _ := json.Marshal(map[string]any{"node": map[string]any{"network devices": map[string]any{"default": map[string]any{"ipaddr": ip}}}})
				req, _ := http.NewRequest("PUT", e.url+"/api/nodes/"+name, bytes.NewReader(body))
				req.SetBasicAuth("admin", "secret")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Sprintf("API %s: %d %s", name, resp.StatusCode, b)
				}
				return
			}
			cmd := exec.Command(wwctl, "node", "add", name, "--ipaddr", ip)
			cmd.Env = append(os.Environ(), config.EnvVar+"="+e.conf)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Sprintf("wwctl %s: %v %s", name, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	db, err := node.Load(e.cfg.NodesConf())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		name := fmt.Sprintf("c%02d", i)
		n, ok := db.Nodes[name]
		if !ok || n.NetDevs["default"] == nil || n.NetDevs["default"].Ipaddr != fmt.Sprintf("10.1.0.%d", i+1) {
			t.Errorf("%s lost", name)
		}
	}
	if len(db.Nodes) != 50 {
		t.Errorf("%d nodes, want 50", len(db.Nodes))
	}
}
