package wwclient

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/archive"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

type file struct {
	name     string
	mode     uint32
	uid, gid uint32
	body     string
}

// overlay builds a compressed cpio archive with the project's own writer,
// as warewulfd would serve it.
func overlay(t testing.TB, c archive.Compression, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		h := &archive.Header{Name: f.name, Mode: f.mode, UID: f.uid, GID: f.gid, Nlink: 1, Mtime: 1700000000}
		if err := w.WriteFile(h, []byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustDecode(t *testing.T, data []byte) []Entry {
	t.Helper()
	es, err := Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestApplyModesOwnersAndLinks(t *testing.T) {
	root := t.TempDir()
	uid, gid := uint32(0), uint32(0)
	if os.Geteuid() == 0 {
		uid, gid = 1234, 4321
	}
	data := overlay(t, archive.Gzip,
		file{name: "etc", mode: archive.TypeDir | 0o755},
		file{name: "etc/secret", mode: archive.TypeReg | 0o600, uid: uid, gid: gid, body: "s3cret\n"},
		file{name: "usr/bin/tool", mode: archive.TypeReg | 0o4755, body: "#!/bin/sh\n"},
		file{name: "etc/link", mode: archive.TypeLink | 0o777, body: "secret"},
		file{name: "var/spool/x", mode: archive.TypeDir | 0o1777, uid: uid, gid: gid},
	)
	changed, err := Apply(root, mustDecode(t, data))
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 5 {
		t.Errorf("changed %v, want 5 paths", changed)
	}
	check := func(name string, mode uint32, uid, gid uint32) {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(root, name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode != mode || st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", name, st.Mode, st.Uid, st.Gid, mode, uid, gid)
		}
	}
	me, mg := uint32(os.Geteuid()), uint32(os.Getegid())
	if os.Geteuid() == 0 {
		me, mg = 0, 0
		check("etc/secret", archive.TypeReg|0o600, uid, gid)
		check("var/spool/x", archive.TypeDir|0o1777, uid, gid)
	}
	check("usr/bin/tool", archive.TypeReg|0o4755, me, mg)
	if got := readFile(t, filepath.Join(root, "etc/link")); got != "s3cret\n" {
		t.Errorf("etc/link reads %q", got)
	}
	if target, _ := os.Readlink(filepath.Join(root, "etc/link")); target != "secret" {
		t.Errorf("etc/link -> %q", target)
	}
	st, _ := os.Stat(filepath.Join(root, "etc/secret"))
	if !st.ModTime().Equal(time.Unix(1700000000, 0)) {
		t.Errorf("mtime %v", st.ModTime())
	}

	// The same overlay again changes nothing.
	changed, err = Apply(root, mustDecode(t, data))
	if err != nil || len(changed) != 0 {
		t.Errorf("second apply changed %v (%v)", changed, err)
	}
}

// TestApplyReplacesByRename checks that a file is replaced by rename: an
// open handle on the old file still reads the old content, and no
// temporary file is left behind.
func TestApplyReplacesByRename(t *testing.T) {
	root := t.TempDir()
	target := filepath.Join(root, "etc/hosts")
	os.MkdirAll(filepath.Dir(target), 0o755)
	os.WriteFile(target, []byte("old\n"), 0o644)
	var before syscall.Stat_t
	syscall.Stat(target, &before)
	old, err := os.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	data := overlay(t, archive.Zstd, file{name: "etc/hosts", mode: archive.TypeReg | 0o644, body: "new\n"})
	if _, err := Apply(root, mustDecode(t, data)); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, target); got != "new\n" {
		t.Errorf("hosts = %q", got)
	}
	var after syscall.Stat_t
	syscall.Stat(target, &after)
	if after.Ino == before.Ino {
		t.Error("file rewritten in place, not replaced by rename")
	}
	buf := make([]byte, 16)
	n, _ := old.Read(buf)
	if string(buf[:n]) != "old\n" {
		t.Errorf("open handle reads %q, want the old content", buf[:n])
	}
	ents, _ := os.ReadDir(filepath.Dir(target))
	if len(ents) != 1 {
		t.Errorf("leftover files: %v", ents)
	}
}

func TestDecodeConcatenatedParts(t *testing.T) {
	shared := overlay(t, archive.Gzip, file{name: "warewulf/a", mode: archive.TypeReg | 0o644, body: "shared"},
		file{name: "etc/motd", mode: archive.TypeReg | 0o644, body: "shared motd"})
	perNode := overlay(t, archive.Gzip, file{name: "etc/motd", mode: archive.TypeReg | 0o644, body: "node motd"})
	root := t.TempDir()
	if _, err := Apply(root, mustDecode(t, append(shared, perNode...))); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "etc/motd")); got != "node motd" {
		t.Errorf("motd = %q: the later part must win", got)
	}
	if got := readFile(t, filepath.Join(root, "warewulf/a")); got != "shared" {
		t.Errorf("a = %q", got)
	}
	// Uncompressed newc works too.
	plain := overlay(t, archive.None, file{name: "p", mode: archive.TypeReg | 0o644, body: "plain"})
	if es := mustDecode(t, plain); len(es) != 1 || string(es[0].Data) != "plain" {
		t.Errorf("plain: %+v", es)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := overlay(t, archive.Gzip, file{name: "etc/x", mode: archive.TypeReg | 0o644, body: strings.Repeat("x", 10000)})
	escape := overlay(t, archive.None, file{name: "../../etc/passwd", mode: archive.TypeReg | 0o644, body: "root::0:0::/:/bin/sh"})
	for name, data := range map[string][]byte{
		"truncated gzip": good[:len(good)/2],
		"corrupt gzip":   append(append([]byte{}, good[:20]...), bytes.Repeat([]byte{0xff}, 50)...),
		"not cpio":       []byte("<html>hello</html>"),
		"escaping path":  escape,
	} {
		if _, err := Decode(bytes.NewReader(data)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func newTestClient(t *testing.T, url string, secure bool) *Client {
	t.Helper()
	u := strings.TrimPrefix(url, "http://")
	host, port, _ := net.SplitHostPort(u)
	var p int
	fmt.Sscan(port, &p)
	cfg := &Config{Controller: host, Port: p, Hwaddr: "52:54:00:00:00:01", Interval: 1, Root: t.TempDir(), Secure: &secure}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(os.Stderr)
	// The asset key comes from the SMBIOS asset tag, here a file.
	tag := filepath.Join(t.TempDir(), "chassis_asset_tag")
	os.WriteFile(tag, []byte("k1\n"), 0o444)
	old := AssetTagFile
	AssetTagFile = tag
	defer func() { AssetTagFile = old }()
	return New(cfg, log)
}

// TestFailedFetchKeepsFiles: a server error, a connection cut in the
// middle of the body and a corrupt body each leave the applied files as
// they were.
func TestFailedFetchKeepsFiles(t *testing.T) {
	good := overlay(t, archive.Gzip, file{name: "etc/hosts", mode: archive.TypeReg | 0o644, body: "good\n"},
		file{name: "etc/big", mode: archive.TypeReg | 0o644, body: strings.Repeat("0123456789", 50000)})
	next := overlay(t, archive.Gzip, file{name: "etc/hosts", mode: archive.TypeReg | 0o644, body: "next\n"},
		file{name: "etc/big", mode: archive.TypeReg | 0o644, body: strings.Repeat("abcdefghij", 50000)})
	var mode atomic.Value
	mode.Store("good")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/runtime/52:54:00:00:00:01" || r.URL.Query().Get("assetkey") != "k1" || r.URL.Query().Get("compress") != "gz" {
			http.Error(w, "bad request "+r.URL.String(), 400)
			return
		}
		switch mode.Load().(string) {
		case "good":
			w.Write(good)
		case "403":
			http.Error(w, "forbidden", http.StatusForbidden)
		case "cut":
			// Promise the whole body, send half, hang up.
			w.Header().Set("Content-Length", fmt.Sprint(len(next)))
			w.Write(next[:len(next)/2])
			panic(http.ErrAbortHandler)
		case "corrupt":
			bad := append([]byte{}, next...)
			for i := 40; i < len(bad)-20; i += 7 {
				bad[i] ^= 0x55
			}
			w.Write(bad)
		}
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, false)
	if _, err := c.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(c.cfg.Root, "etc/hosts")
	for _, m := range []string{"403", "cut", "corrupt"} {
		mode.Store(m)
		if _, err := c.Update(context.Background()); err == nil {
			t.Errorf("%s: update succeeded", m)
		}
		if got := readFile(t, hosts); got != "good\n" {
			t.Errorf("%s: hosts = %q, want the old file", m, got)
		}
		if got := readFile(t, filepath.Join(c.cfg.Root, "etc/big")); got[:10] != "0123456789" {
			t.Errorf("%s: big file changed", m)
		}
	}
}

// TestPrivilegedDialer: requests leave from a port below 1024, and a busy
// port is skipped.
func TestPrivilegedDialer(t *testing.T) {
	testenv.Need(t, "binding a privileged port needs root (CI runs as root)", os.Geteuid() == 0)
	var ports []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, p, _ := net.SplitHostPort(r.RemoteAddr)
		var n int
		fmt.Sscan(p, &n)
		ports = append(ports, n)
		w.Write(overlay(t, archive.Gzip, file{name: "ok", mode: archive.TypeReg | 0o644, body: "ok"}))
	}))
	defer srv.Close()

	// Find five ports we can hold, then free the last one: the dialer
	// must skip the four busy ones and use it.
	var held []net.Listener
	low := 0
	for base := 700; base < 1000 && low == 0; base += 5 {
		for _, l := range held {
			l.Close()
		}
		held = held[:0]
		for p := base; p < base+5; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
			if err != nil {
				break
			}
			held = append(held, l)
		}
		if len(held) == 5 {
			low = base
		}
	}
	if low == 0 {
		t.Fatal("no five free ports in 700-999")
	}
	held[4].Close()
	held = held[:4]
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	d := &PrivilegedDialer{Low: low, High: low + 4}
	conn, err := d.DialContext(context.Background(), "tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if got := conn.LocalAddr().(*net.TCPAddr).Port; got != low+4 {
		t.Errorf("dialed from port %d, want the one free port %d", got, low+4)
	}
	conn.Close()

	c := newTestClient(t, srv.URL, true)
	for i := 0; i < 3; i++ {
		if _, err := c.Update(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range ports {
		if p >= 1024 || p < LowPort {
			t.Errorf("request from port %d, want %d-%d", p, LowPort, HighPort)
		}
	}
	if len(ports) != 3 {
		t.Errorf("%d requests, want 3", len(ports))
	}

	// All ports busy: a clear error, not a hang.
	d = &PrivilegedDialer{Low: low, High: low + 3}
	if _, err := d.DialContext(context.Background(), "tcp", strings.TrimPrefix(srv.URL, "http://")); err == nil || !strings.Contains(err.Error(), "no free source port") {
		t.Errorf("all ports busy: %v", err)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	var hits atomic.Int32
	body := overlay(t, archive.Gzip, file{name: "x", mode: archive.TypeReg | 0o644, body: "x"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(body)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	time.Sleep(1500 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if n := hits.Load(); n < 2 {
		t.Errorf("%d fetches in 1.5 s with a 1 s interval, want 2", n)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "config")
	os.WriteFile(f, []byte("controller: 10.99.0.1\nport: 9873\nhwaddr: 52:54:00:aa:bb:cc\nasset key: abc\nupdate interval: 5\n"), 0o600)
	c, err := LoadConfig(f, "console=ttyS0 wwclient.port=9999")
	if err != nil {
		t.Fatal(err)
	}
	if c.Controller != "10.99.0.1" || c.Port != 9999 || len(c.Ignored) != 1 || c.Ignored[0] != "asset key" || c.Interval != 5 || c.Root != "/" {
		t.Errorf("%+v", c)
	}
	os.WriteFile(f, []byte("controller: nowhere\n"), 0o600)
	if _, err := LoadConfig(f, ""); err == nil || !strings.Contains(err.Error(), `"nowhere"`) {
		t.Errorf("bad controller: %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing"), ""); err == nil {
		t.Error("missing config accepted")
	}
}
