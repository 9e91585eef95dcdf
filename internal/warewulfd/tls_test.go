package warewulfd

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/archive"
	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/overlay"
	"github.com/warewulf-ng/warewulf/internal/tlskeys"
	"github.com/warewulf-ng/warewulf/internal/wwclient"
)

// TestRuntimeOverTLS: with `tls` on, warewulfd serves HTTPS on `tls port`
// with the keys of `wwctl configure tls`; the runtime overlay goes only
// over HTTPS, and wwclient fetches and applies it trusting the CA its
// overlay carries, from n1's address and a privileged port. A client with
// another CA gets nothing.
func TestRuntimeOverTLS(t *testing.T) {
	needRoot(t)
	tlsPort := freePort(t)
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), secure: true, edit: func(c *config.Config) {
		c.Warewulf.TLS, c.Warewulf.TLSPort = true, tlsPort
		if _, err := tlskeys.Make(c.TLSDir(), []net.IP{net.ParseIP("127.0.0.1")}, nil, false); err != nil {
			t.Fatal(err)
		}
	}})
	for deadline := time.Now().Add(3 * time.Second); e.srv.TLSAddr() == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) { // Run starts it
			t.Fatalf("no HTTPS listener:\n%s", e.logs)
		}
	}
	// An overlay wwclient can apply: one file.
	var img bytes.Buffer
	w, _ := archive.NewWriter(&img, archive.Gzip)
	w.WriteFile(&archive.Header{Name: "etc/motd", Mode: archive.TypeReg | 0o644, Nlink: 1, Mtime: 1700000000}, []byte("over tls\n"))
	w.Close()
	writeFile(t, filepath.Join(e.cfg.OverlayProvisionDir("_shared"), overlay.Runtime+".img"), nil)
	writeFile(t, filepath.Join(e.cfg.OverlayProvisionDir("n1"), overlay.Runtime+".img"), img.Bytes())

	// Plain HTTP, even from the node's address and a privileged port: 403.
	resp, err := clientFrom("127.0.0.11", privilegedPort(t, "127.0.0.11")).Get(e.base + "/runtime/52:54:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("runtime over HTTP with tls on: %s", resp.Status)
	}
	e.awaitLog(t, "refused", "HTTPS only")

	root := t.TempDir()
	secure := true
	cfg := &wwclient.Config{Controller: "127.0.0.1", Port: 1, TLS: true, TLSPort: tlsPort, CAFile: filepath.Join(e.cfg.TLSDir(), tlskeys.CAFile),
		Hwaddr: "52:54:00:00:00:01", Interval: 60, Root: root, Source: "127.0.0.11", Secure: &secure}
	log := logrus.New()
	log.SetOutput(io.Discard)
	if _, err := wwclient.New(cfg, log).Update(context.Background()); err != nil {
		t.Fatalf("wwclient over HTTPS: %v\n%s", err, e.logs)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "etc/motd")); string(data) != "over tls\n" {
		t.Fatalf("applied %q", data)
	}

	// Another CA: the handshake fails, nothing is applied.
	other := t.TempDir()
	tlskeys.Make(other, []net.IP{net.ParseIP("127.0.0.1")}, nil, false)
	cfg2 := *cfg
	cfg2.CAFile, cfg2.Root = filepath.Join(other, tlskeys.CAFile), t.TempDir()
	if _, err := wwclient.New(&cfg2, log).Update(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client with another CA: %v", err)
	}
	// The other routes answer over HTTPS too.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err = c.Get("https://" + e.srv.TLSAddr().String() + "/ipxe/52:54:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("ipxe over https: %s", resp.Status)
	}
}
