package warewulfd

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// filesEnv: n1 (asset key k1) and the files directory with a plain file,
// a template, a FIFO and links out of the directory.
func filesEnv(t *testing.T, secureFiles *bool) *testEnv {
	e := newEnv(t, envOptions{nodesConf: nodesConf("k1"), edit: func(c *config.Config) { c.Warewulf.SecureFiles = secureFiles }})
	dir := e.cfg.FilesDir()
	writeFile(t, filepath.Join(dir, "hello.txt"), []byte("hello\n"))
	writeFile(t, filepath.Join(dir, "sub", "who.ww"), []byte("node={{ .Id }}\n"))
	writeFile(t, filepath.Join(filepath.Dir(dir), "outside.txt"), []byte("outside\n"))
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Symlink("../outside.txt", filepath.Join(dir, "out-link"))
	os.Symlink(filepath.Dir(dir), filepath.Join(dir, "out-dir"))
	return e
}

func TestFiles(t *testing.T) {
	e := filesEnv(t, nil)
	const id = "wwid=52:54:00:00:00:01&assetkey=k1"
	for path, want := range map[string]int{
		"/files/hello.txt?" + id:                              200,
		"/files/hello.txt?wwid=52-54-00-00-00-01&assetkey=k1": 200,
		"/files/hello.txt?wwid=52:54:00:00:00:01":             http.StatusUnauthorized, // no key
		"/files/hello.txt?wwid=52:54:00:00:00:01&assetkey=k2": http.StatusForbidden,
		"/files/hello.txt":                                    http.StatusUnauthorized, // no node: loopback has no ARP entry
		"/files/hello.txt?wwid=52:54:00:00:00:99":             http.StatusUnauthorized,
		"/files/hello.txt?wwid=bogus":                         http.StatusUnauthorized,
		"/files/?" + id:                                       404, // no listing
		"/files/sub?" + id:                                    404,
		"/files/missing?" + id:                                404,
		"/files/fifo?" + id:                                   404, // and no hang
		"/files/out-link?" + id:                               404,
		"/files/out-dir/outside.txt?" + id:                    404,
		"/files/%2e%2e/outside.txt?" + id:                     404,
		"/files/sub/who.ww?render&" + id:                      200,
		"/files/sub/who?render&" + id:                         200,
		"/files/sub/who?render=n1&" + id:                      200,
		"/files/sub/who?render=n2&" + id:                      400,
		"/files/hello.txt?render&" + id:                       400,
		"/files/nothing?render&" + id:                         404,
		"/files/out-dir/outside.txt?render&" + id:             404,
	} {
		start := time.Now()
		resp, body := e.get(path)
		if resp.StatusCode != want {
			t.Errorf("%s: %s, want %d (%q)", path, resp.Status, want, body)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("%s took %v", path, time.Since(start))
		}
		if want == 200 && strings.Contains(path, "render") && string(body) != "node=n1\n" {
			t.Errorf("%s: %q", path, body)
		}
		if strings.Contains(string(body), "outside") {
			t.Errorf("%s: served a file outside the files directory", path)
		}
	}
	e.awaitLog(t, "files: refused", "node=n1", "asset key does not match")
	if strings.Contains(e.logs.String(), "k1\"") || strings.Contains(e.logs.String(), "=k1 ") {
		t.Errorf("the asset key is in the log:\n%s", e.logs.String())
	}
}

// Secure mode: /files/ wants a privileged port, unless `secure files` is
// false.
func TestFilesSecurePort(t *testing.T) {
	needRoot(t)
	no := false
	for _, c := range []struct {
		secureFiles *bool
		port        int
		want        int
	}{{nil, 0, http.StatusForbidden}, {nil, -1, 200}, {&no, 0, 200}} {
		e := filesEnv(t, c.secureFiles)
		e.setConfig(func(cfg *config.Config) { cfg.Warewulf.Secure = true })
		time.Sleep(300 * time.Millisecond) // the reload polls every 100 ms
		port := c.port
		if port < 0 {
			port = privilegedPort(t, "127.0.0.1")
		}
		resp, err := clientFrom("127.0.0.1", port).Get(e.base + "/files/hello.txt?wwid=52:54:00:00:00:01&assetkey=k1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("secure files %v, port %d: %s, want %d", c.secureFiles, port, resp.Status, c.want)
		}
	}
}
