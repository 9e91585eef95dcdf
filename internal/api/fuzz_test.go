package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// FuzzRecordJSON: any body sent to PUT and PATCH of a node or profile is
// answered 200 or 4xx with a JSON error, never a panic or a 500, and
// nodes.conf always stays loadable.
func FuzzRecordJSON(f *testing.F) {
	for _, s := range []string{
		`{"node": {"system overlay": ["wwinit"], "kernel": {"args": ["quiet"]}}}`,
		`{"node": {"network devices": {"default": {"hwaddr": "52:54:00:00:00:01", "ipaddr": "10.0.0.1"}}}}`,
		`{"profile": {"tags": {"a": "b"}, "ipmi": {"username": "x"}}}`,
		`{"node": {"kernel": "not a map"}}`, `{"node": null}`, `[]`, `{"node": {"discoverable": "maybe"}}`,
		`{"node": {"profiles": ["default"], "primary network": "x", "disks": {"/dev/sda": {"wipe": true}}}}`,
	} {
		f.Add(s, "n1", false)
	}
	dir := f.TempDir()
	file, err := config.WriteSandbox(dir, config.SandboxOptions{Ipaddr: "127.0.0.1", Netmask: "255.0.0.0"})
	if err != nil {
		f.Fatal(err)
	}
	cfg, _ := config.Load(file)
	cfg.API.Enabled = true
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	writeAll(f, cfg.AuthFile(), "users:\n  - name: u\n    password hash: "+string(h)+"\n")
	writeAll(f, cfg.NodesConf(), "nodeprofiles:\n  default: {}\nnodes: {}\n")
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	srv := New(func() *config.Config { return cfg }, nil, log)
	f.Fuzz(func(t *testing.T, body, id string, patch bool) {
		method, path := "PUT", "/api/nodes/"
		if patch {
			method = "PATCH"
		}
		if strings.Contains(body, `"profile"`) {
			path = "/api/profiles/"
		}
		req := httptest.NewRequest(method, "http://x"+path+"n1", strings.NewReader(body))
		if id != "" {
			req = httptest.NewRequest(method, "http://x"+path+url.PathEscape(id), strings.NewReader(body))
		}
		req.RemoteAddr = "127.0.0.1:1234"
		req.SetBasicAuth("u", "pw")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code >= 500 || w.Code < 400 && w.Code != http.StatusOK && w.Code != http.StatusTemporaryRedirect { // 307: the mux cleans "." and ".."
			t.Fatalf("%s %q: %d %s", method, body, w.Code, w.Body)
		}
		if _, err := node.Load(cfg.NodesConf()); err != nil {
			t.Fatalf("nodes.conf broken after %s %q: %v", method, body, err)
		}
	})
}

func writeAll(t testing.TB, path, data string) {
	t.Helper()
	if err := writeFileAll(path, data); err != nil {
		t.Fatal(err)
	}
}

func writeFileAll(path, data string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(data), 0o644)
}
