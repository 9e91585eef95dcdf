package stage1

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/archive"
)

// testArchive builds a compressed archive: a directory, files (one big and
// incompressible), a symlink, a hard-linked pair, and a second archive
// appended that replaces a file, as an overlay does the image's.
func testArchive(t *testing.T, c archive.Compression) ([]byte, []byte) {
	t.Helper()
	big := make([]byte, 3<<20+7)
	rand.Read(big)
	var buf bytes.Buffer
	for i, files := range [][]struct {
		h    archive.Header
		data string
	}{
		{
			{archive.Header{Name: "etc", Mode: archive.TypeDir | 0o755}, ""},
			{archive.Header{Name: "etc/hostname", Mode: archive.TypeReg | 0o644, Mtime: 1_700_000_000}, "image\n"},
			{archive.Header{Name: "etc/shadow", Mode: archive.TypeReg | 0o600, UID: 0, GID: 42}, "root:x\n"},
			{archive.Header{Name: "bin/tool", Mode: archive.TypeReg | 0o4755}, "#!/bin/sh\n"},
			{archive.Header{Name: "etc/link", Mode: archive.TypeLink | 0o777}, "hostname"},
			{archive.Header{Name: "a", Mode: archive.TypeReg | 0o644, Nlink: 2, Inode: 900}, ""},
			{archive.Header{Name: "b", Mode: archive.TypeReg | 0o644, Nlink: 2, Inode: 900}, "shared"},
		},
		{
			{archive.Header{Name: "etc/hostname", Mode: archive.TypeReg | 0o644}, "overlay\n"},
			{archive.Header{Name: "big", Mode: archive.TypeReg | 0o644}, ""},
		},
	} {
		w, err := archive.NewWriter(&buf, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			h := f.h
			data := []byte(f.data)
			if h.Name == "big" {
				data = big
			}
			if err := w.WriteFile(&h, data); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if i == 0 && c == archive.None {
			buf.Write(make([]byte, 512)) // padding between archives, as iPXE puts between initrds
		}
	}
	return buf.Bytes(), big
}

func checkTree(t *testing.T, root string, big []byte) {
	t.Helper()
	for name, want := range map[string]string{"etc/hostname": "overlay\n", "etc/shadow": "root:x\n", "a": "shared", "b": "shared", "etc/link": "overlay\n"} {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "big")); !bytes.Equal(got, big) {
		t.Errorf("big: %d bytes, not the %d written", len(got), len(big))
	}
	if fi, err := os.Stat(filepath.Join(root, "bin/tool")); err != nil || fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/tool: %v %v, want setuid 0755", fi.Mode(), err)
	}
	if fi, _ := os.Stat(filepath.Join(root, "etc/shadow")); fi.Mode().Perm() != 0o600 {
		t.Errorf("etc/shadow: mode %v", fi.Mode())
	}
	a, _ := os.Stat(filepath.Join(root, "a"))
	b, _ := os.Stat(filepath.Join(root, "b"))
	if !os.SameFile(a, b) {
		t.Error("a and b are not one file (hard link)")
	}
}

func TestUnpack(t *testing.T) {
	for _, c := range []archive.Compression{archive.Gzip, archive.Zstd, archive.None} {
		t.Run(string(c)+"x", func(t *testing.T) {
			data, big := testArchive(t, c)
			root := t.TempDir()
			n, err := Unpack(bytes.NewReader(data), root)
			if err != nil {
				t.Fatal(err)
			}
			if n != 9 {
				t.Errorf("%d entries, want 9", n)
			}
			checkTree(t, root, big)
		})
	}
}

func TestUnpackRefusesEscapes(t *testing.T) {
	for _, name := range []string{"../evil", "a/../../evil", "x/../../../evil"} {
		var buf bytes.Buffer
		w, _ := archive.NewWriter(&buf, archive.None)
		w.WriteFile(&archive.Header{Name: name, Mode: archive.TypeReg | 0o644}, []byte("x"))
		w.Close()
		dir := t.TempDir()
		root := filepath.Join(dir, "root")
		os.Mkdir(root, 0o755)
		_, err := Unpack(&buf, root)
		if err == nil || !strings.Contains(err.Error(), "bad path") {
			t.Errorf("%s: err %v, want bad path", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "evil")); err == nil {
			t.Errorf("%s: written outside the root", name)
		}
	}
	if _, err := Unpack(strings.NewReader("not an archive at all"), t.TempDir()); err == nil {
		t.Error("garbage unpacked without an error")
	}
}

// flakyServer serves data with http.ServeContent (Range, If-Range) and a
// digest, but cuts the first responses short and answers some with 503.
type flakyServer struct {
	data     []byte
	etag     string
	cutAt    []int64 // cut the n-th full or partial response after this many bytes
	busy     int     // answer this many requests first with 503
	requests atomic.Int32
	ranges   atomic.Int32
}

func (f *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(f.requests.Add(1)) - 1
	if n < f.busy {
		w.Header().Set("Retry-After", "0")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if r.Header.Get("Range") != "" {
		f.ranges.Add(1)
	}
	sum := sha256.Sum256(f.data)
	w.Header().Set(DigestHeader, FormatDigest(sum[:]))
	w.Header().Set("ETag", f.etag)
	i := n - f.busy
	if i < len(f.cutAt) {
		// Send the headers and some bytes, then break the connection.
		w = &cutWriter{ResponseWriter: w, left: f.cutAt[i]}
	}
	http.ServeContent(w, r, "", time.Unix(1, 0), bytes.NewReader(f.data))
}

type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		p = p[:c.left]
		c.ResponseWriter.Write(p)
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drops the connection mid-body
	}
	c.left -= int64(len(p))
	return c.ResponseWriter.Write(p)
}

func fastRetry(d *Download) {
	d.Retry = Retry{Base: time.Millisecond, Max: 5 * time.Millisecond, Stall: 5 * time.Second, MaxRetryAfter: 10 * time.Millisecond}
}

func TestDownloadResumesAndVerifies(t *testing.T) {
	data, big := testArchive(t, archive.Zstd)
	fs := &flakyServer{data: data, etag: `"v1"`, cutAt: []int64{100_000, 1_500_000}, busy: 2}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	d := NewDownload(context.Background(), srv.Client(), srv.URL+"/image/x")
	fastRetry(d)
	var logs []string
	d.Logf = func(f string, a ...any) { logs = append(logs, f) }
	root := t.TempDir()
	if _, err := Unpack(d, root); err != nil {
		t.Fatal(err)
	}
	checkTree(t, root, big)
	if d.Resumes != 2 || fs.ranges.Load() != 2 {
		t.Errorf("resumes %d, range requests %d; want 2 and 2", d.Resumes, fs.ranges.Load())
	}
	if d.Waits != 2 {
		t.Errorf("waits %d, want 2 (503s)", d.Waits)
	}
	if !d.Verified() || d.Offset() != int64(len(data)) {
		t.Errorf("verified %v, %d of %d bytes", d.Verified(), d.Offset(), len(data))
	}
}

func TestDownloadDigestMismatch(t *testing.T) {
	data, _ := testArchive(t, archive.Gzip)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(DigestHeader, FormatDigest(make([]byte, 32)))
		w.Write(data)
	}))
	defer srv.Close()
	d := NewDownload(context.Background(), srv.Client(), srv.URL)
	_, err := Unpack(d, t.TempDir())
	if !errors.Is(err, ErrDigest) {
		t.Fatalf("err %v, want a digest mismatch", err)
	}
}

// A file replaced on the server between a cut and the resume: If-Range
// no longer matches, the server sends the whole new file, and Fetch starts
// over instead of splicing two versions.
func TestFetchStartsOverWhenTheFileChanged(t *testing.T) {
	v1, _ := testArchive(t, archive.Gzip)
	v2, big2 := testArchive(t, archive.Gzip)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, etag := v2, `"v2"`
		var out http.ResponseWriter = w
		if calls.Add(1) == 1 {
			data, etag = v1, `"v1"`
			out = &cutWriter{ResponseWriter: w, left: 200_000}
		}
		sum := sha256.Sum256(data)
		w.Header().Set(DigestHeader, FormatDigest(sum[:]))
		w.Header().Set("ETag", etag)
		http.ServeContent(out, r, "", time.Unix(1, 0), bytes.NewReader(data))
	}))
	defer srv.Close()
	root := t.TempDir()
	st, err := Fetch(context.Background(), srv.Client(), srv.URL, root, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, root, big2)
	if !st.Verified || calls.Load() != 3 {
		t.Errorf("verified %v after %d requests; want verified after 3 (cut, changed, again)", st.Verified, calls.Load())
	}
}

func TestDownloadGivesUpOn404(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	d := NewDownload(context.Background(), srv.Client(), srv.URL)
	if _, err := io.ReadAll(d); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err %v, want the 404", err)
	}
}

func TestParseCmdline(t *testing.T) {
	p, err := ParseCmdline("console=ttyS0 wwid=52-54-00-AA-00-01 wwstage1.base=http://10.0.0.1:9873 wwstage1.ip=10.0.0.5 wwstage1.netmask=255.255.255.0 wwstage1.gateway= wwstage1.compress=zstd wwstage1.runtime=1 quiet")
	if err != nil {
		t.Fatal(err)
	}
	if p.MAC != "52:54:00:aa:00:01" || p.Gateway != nil || !p.Runtime || p.URL("image", "zstd") != "http://10.0.0.1:9873/image/52:54:00:aa:00:01?compress=zstd" {
		t.Errorf("%+v", p)
	}
	for cmdline, want := range map[string]string{
		"wwid=52:54:00:aa:00:01 wwstage1.base=http://x wwstage1.ip=10.0.0.500 wwstage1.netmask=255.0.0.0": `wwstage1.ip="10.0.0.500"`,
		"wwid=52:54:00:aa:00:01 wwstage1.base=ftp://x wwstage1.ip=10.0.0.5 wwstage1.netmask=255.0.0.0":    `wwstage1.base="ftp://x"`,
		"wwid=52:54:00:aa:00:01":                    "lacks wwstage1.base, wwstage1.ip, wwstage1.netmask",
		"wwid=52:54:00:aa:00:01 wwstage1.root=sda1": `wwstage1.root="sda1": not tmpfs, initramfs or a /dev/ path`,
	} {
		if _, err := ParseCmdline(cmdline); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %s", cmdline, err, want)
		}
	}
}

// A connection that goes quiet (a link down: TCP would wait for minutes)
// is dropped after Retry.Idle and the download resumes on a new one.
func TestDownloadResumesAfterSilence(t *testing.T) {
	data, big := testArchive(t, archive.Gzip)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.Sum256(data)
		w.Header().Set(DigestHeader, FormatDigest(sum[:]))
		w.Header().Set("ETag", `"v1"`)
		if calls.Add(1) == 1 {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data[:300_000])
			w.(http.Flusher).Flush()
			select { // silent, as behind a dead link
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		http.ServeContent(w, r, "", time.Unix(1, 0), bytes.NewReader(data))
	}))
	defer srv.Close()
	d := NewDownload(context.Background(), srv.Client(), srv.URL)
	fastRetry(d)
	d.Retry.Idle = 300 * time.Millisecond
	root := t.TempDir()
	start := time.Now()
	if _, err := Unpack(d, root); err != nil {
		t.Fatal(err)
	}
	checkTree(t, root, big)
	if d.Resumes != 1 || time.Since(start) > 5*time.Second {
		t.Errorf("%d resumes in %v; want 1, well before the server's 10 s", d.Resumes, time.Since(start))
	}
}
