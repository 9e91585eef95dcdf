package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// layerEntry is one tar entry of a test layer.
type layerEntry struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	body     string // content, or link target
	major    int64
	minor    int64
	xattrs   map[string]string
}

var epoch = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func dirE(name string, mode int64) layerEntry {
	return layerEntry{name: name, typ: tar.TypeDir, mode: mode}
}
func fileE(name string, mode int64, body string) layerEntry {
	return layerEntry{name: name, typ: tar.TypeReg, mode: mode, body: body}
}

// testLayers delete and replace files across layers (whiteouts, an opaque
// directory, a directory replaced by a file, a file by a symlink), add hard
// links, a setuid binary, devices, a fifo, owners and an xattr.
func testLayers() [][]layerEntry {
	return [][]layerEntry{{
		dirE("bin", 0o755), fileE("bin/tool", 0o755, "tool v1\n"),
		dirE("etc", 0o755), fileE("etc/old", 0o644, "old\n"), fileE("etc/replace", 0o644, "v1\n"),
		dirE("gone", 0o755), fileE("gone/f1", 0o644, "f1"), dirE("gone/sub", 0o700), fileE("gone/sub/f2", 0o644, "f2"),
		dirE("opaque", 0o755), fileE("opaque/a", 0o644, "a"), fileE("opaque/b", 0o644, "b"),
		dirE("usr", 0o755), dirE("usr/bin", 0o755),
	}, {
		fileE("etc/.wh.old", 0o644, ""),
		{name: "etc/replace", typ: tar.TypeReg, mode: 0o600, uid: 1000, gid: 100, body: "v2, private\n"},
		fileE(".wh.gone", 0o644, ""),
		dirE("opaque", 0o750), fileE("opaque/.wh..wh..opq", 0o644, ""), fileE("opaque/c", 0o644, "c"),
		fileE("usr/bin/su", 0o4755, "#!/bin/sh\nsetuid\n"),
		fileE("usr/bin/wall", 0o2755, "setgid\n"),
		fileE("usr/bin/x", 0o755, strings.Repeat("hard linked\n", 1000)),
		{name: "usr/bin/y", typ: tar.TypeLink, body: "usr/bin/x"},
		{name: "usr/bin/z", typ: tar.TypeLink, body: "usr/bin/x"},
		dirE("dev", 0o755),
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		{name: "dev/loop0", typ: tar.TypeBlock, mode: 0o660, gid: 6, major: 7, minor: 0},
		{name: "dev/initctl", typ: tar.TypeFifo, mode: 0o600},
		{name: "home", typ: tar.TypeDir, mode: 0o755},
		{name: "home/u", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 100},
		{name: "home/u/file", typ: tar.TypeReg, mode: 0o640, uid: 1000, gid: 100, body: "mine"},
		{name: "etc/link", typ: tar.TypeSymlink, body: "/etc/replace"},
		{name: "etc/xattr", typ: tar.TypeReg, mode: 0o644, body: "with xattr", xattrs: map[string]string{"user.ww": "hello"}},
		dirE("tmp", 0o1777),
	}, {
		{name: "bin/tool", typ: tar.TypeSymlink, body: "../usr/bin/x"},
		fileE("gone", 0o644, "gone is a file now\n"),
		fileE("etc/.wh.replace", 0o644, ""),
		dirE("etc/replace", 0o755), fileE("etc/replace/inside", 0o644, "a file became a dir"),
	}}
}

func tarLayer(t testing.TB, entries []layerEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: epoch, Devmajor: e.major, Devminor: e.minor, Format: tar.FormatPAX}
		switch e.typ {
		case tar.TypeReg:
			h.Size = int64(len(e.body))
		case tar.TypeSymlink, tar.TypeLink:
			h.Linkname = e.body
		}
		if len(e.xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeOCILayout writes an OCI image layout at dir holding one image
// tagged tag: the first layers gzip-compressed, the last one not.
func writeOCILayout(t testing.TB, dir, tag string) {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(data []byte, mt string) v1.Descriptor {
		sum := sha256.Sum256(data)
		if err := os.WriteFile(filepath.Join(blobs, hex.EncodeToString(sum[:])), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return v1.Descriptor{MediaType: mt, Digest: digest.NewDigestFromBytes(digest.SHA256, sum[:]), Size: int64(len(data))}
	}
	var layers []v1.Descriptor
	var diffIDs []digest.Digest
	all := testLayers()
	for i, entries := range all {
		raw := tarLayer(t, entries)
		diffIDs = append(diffIDs, digest.FromBytes(raw))
		if i == len(all)-1 {
			layers = append(layers, put(raw, v1.MediaTypeImageLayer))
			continue
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(raw)
		zw.Close()
		layers = append(layers, put(gz.Bytes(), v1.MediaTypeImageLayerGzip))
	}
	cfg := v1.Image{Created: &epoch, Platform: v1.Platform{OS: "linux", Architecture: "amd64"},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs}, Config: v1.ImageConfig{Cmd: []string{"/bin/sh"}}}
	cfgJSON, _ := json.Marshal(cfg)
	m := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
		Config: put(cfgJSON, v1.MediaTypeImageConfig), Layers: layers}
	mJSON, _ := json.Marshal(m)
	md := put(mJSON, v1.MediaTypeImageManifest)
	md.Annotations = map[string]string{v1.AnnotationRefName: tag}
	md.Platform = &v1.Platform{OS: "linux", Architecture: "amd64"}
	idx := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{md}}
	idxJSON, _ := json.Marshal(idx)
	os.WriteFile(filepath.Join(dir, "index.json"), idxJSON, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// copyImage copies an image between transports with skopeo, as a user
// would (plain HTTP and no TLS checks towards the test registry).
func copyImage(t testing.TB, from, to string, extra ...string) {
	t.Helper()
	requireTool(t, "skopeo")
	args := append([]string{"--insecure-policy", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false"}, extra...)
	run(t, "", "skopeo", append(args, from, to)...)
}

// startRegistry runs Debian's distribution registry on a free loopback
// port and returns host:port; it is stopped by PID when the test ends.
func startRegistry(t testing.TB) string { return startRegistryWith(t, "") }

// startRegistryWith adds extra (indented YAML under http:, then top-level
// keys after a "---auth---" line) to the registry's configuration.
func startRegistryWith(t testing.TB, extra string) string {
	t.Helper()
	requireTool(t, "docker-registry")
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	httpExtra, top, _ := strings.Cut(extra, "---auth---\n")
	conf += httpExtra + top
	confFile := filepath.Join(dir, "config.yml")
	os.WriteFile(confFile, []byte(conf), 0o644)
	cmd := exec.Command("docker-registry", "serve", confFile)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	scheme := "http://"
	if strings.Contains(extra, "tls:") {
		scheme = "https://"
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := client.Get(scheme + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry on %s did not come up: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// umociUnpack is the reference unpack of an OCI layout's image.
func umociUnpack(t testing.TB, layout, tag string) string {
	t.Helper()
	requireTool(t, "umoci")
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, "", "umoci", "unpack", "--image", layout+":"+tag, bundle)
	return filepath.Join(bundle, "rootfs")
}

func xattrOf(t testing.TB, p string) string {
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(p, "user.ww", buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func TestImportOCISources(t *testing.T) {
	requireRoot(t)
	requireLong(t)
	layout := filepath.Join(t.TempDir(), "layout")
	writeOCILayout(t, layout, "test")
	ref := umociUnpack(t, layout, "test")
	want := snapshot(t, ref, nil, true)
	// Spot checks that the reference itself holds what the layers mean.
	for p, typ := range map[string]string{"etc/old": "", "gone": "file", "opaque/a": "", "opaque/c": "file",
		"bin/tool": "symlink", "etc/replace": "dir", "dev/null": "char", "usr/bin/y": "file"} {
		if want[p].Type != typ {
			t.Fatalf("umoci reference: %s is %q, want %q", p, want[p].Type, typ)
		}
	}
	if xattrOf(t, filepath.Join(ref, "etc/xattr")) != "hello" {
		t.Log("umoci did not keep the user.ww xattr (filesystem without user xattrs?)")
	}

	reg := startRegistry(t)
	work := t.TempDir()
	copyImage(t, "oci:"+layout+":test", "docker://"+reg+"/ww/test:1")
	copyImage(t, "oci:"+layout+":test", "oci-archive:"+filepath.Join(work, "img.oci.tar")+":test")
	copyImage(t, "oci:"+layout+":test", "docker-archive:"+filepath.Join(work, "img.docker.tar")+":ww/test:1")
	storeRef := fmt.Sprintf("containers-storage:[vfs@%s+%s]localhost/ww/test:1", filepath.Join(work, "storage"), filepath.Join(work, "run"))
	copyImage(t, "oci:"+layout+":test", storeRef)

	cfg := sandbox(t)
	sources := map[string]ImportOptions{
		"docker://" + reg + "/ww/test:1":                          {PlainHTTP: true},
		"oci:" + layout + ":test":                                 {},
		"oci-archive:" + filepath.Join(work, "img.oci.tar"):       {},
		"docker-archive:" + filepath.Join(work, "img.docker.tar"): {},
		storeRef: {},
	}
	i := 0
	for src, o := range sources {
		i++
		name := fmt.Sprintf("img%d", i)
		t.Run(strings.SplitN(src, ":", 2)[0], func(t *testing.T) {
			var progress bytes.Buffer
			o.Progress = &progress
			m, err := Import(context.Background(), cfg, src, name, o)
			if err != nil {
				t.Fatal(err)
			}
			if m.Source != src || !strings.HasPrefix(m.Digest, "sha256:") || m.Platform != "linux/amd64" || m.Imported.IsZero() {
				t.Fatalf("metadata %+v", m)
			}
			if !strings.Contains(progress.String(), "layer 3/3") {
				t.Fatalf("no progress lines: %q", progress.String())
			}
			rootfs := cfg.ImageRootfs(name)
			compareTrees(t, want, snapshot(t, rootfs, nil, true))
			if got, exp := xattrOf(t, filepath.Join(rootfs, "etc/xattr")), xattrOf(t, filepath.Join(ref, "etc/xattr")); got != exp {
				t.Fatalf("xattr user.ww: %q, reference %q", got, exp)
			}
			stored, err := ReadMeta(cfg, name)
			if err != nil || stored.Digest != m.Digest {
				t.Fatalf("stored metadata %+v, %v", stored, err)
			}
		})
	}

	// Upstream imports a plain file, and file://FILE, as a docker save
	// archive; an OCI archive as a plain file is told apart too.
	t.Run("plain files", func(t *testing.T) {
		dockerTar, ociTar := filepath.Join(work, "img.docker.tar"), filepath.Join(work, "img.oci.tar")
		for src, recorded := range map[string]string{
			dockerTar:             "docker-archive:" + dockerTar,
			"file://" + dockerTar: "docker-archive:" + dockerTar,
			ociTar:                "oci-archive:" + ociTar,
		} {
			i++
			name := fmt.Sprintf("img%d", i)
			m, err := Import(context.Background(), cfg, src, name, ImportOptions{})
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			if m.Source != recorded {
				t.Errorf("%s: recorded as %q, want %q", src, m.Source, recorded)
			}
			compareTrees(t, want, snapshot(t, cfg.ImageRootfs(name), nil, true))
		}
	})

	// --update writes the source over the image: what the source lacks
	// stays, what it has is replaced; without --update or --force the
	// error says both.
	t.Run("update", func(t *testing.T) {
		src := "oci:" + layout + ":test"
		if _, err := Import(context.Background(), cfg, src, "img1", ImportOptions{}); err == nil || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), "--update") {
			t.Fatalf("existing image: %v", err)
		}
		rootfs := cfg.ImageRootfs("img1")
		os.WriteFile(filepath.Join(rootfs, "file-kept"), []byte("persist"), 0o644)
		os.WriteFile(filepath.Join(rootfs, "usr/bin/y"), []byte("changed"), 0o755)
		if _, err := Import(context.Background(), cfg, src, "img1", ImportOptions{Update: true}); err != nil {
			t.Fatal(err)
		}
		if data, err := os.ReadFile(filepath.Join(rootfs, "file-kept")); err != nil || string(data) != "persist" {
			t.Errorf("file-kept: %q %v", data, err)
		}
		got := snapshot(t, rootfs, func(rel string) bool { return rel == "file-kept" }, true)
		compareTrees(t, want, got)
	})

	t.Run("failures", func(t *testing.T) {
		// A tag that is not there, a registry that is not there, a bad
		// platform: errors, and the existing image stays as it was.
		before := snapshot(t, cfg.ImageRootfs("img1"), nil, true)
		for src, o := range map[string]ImportOptions{
			"docker://" + reg + "/ww/test:nope": {PlainHTTP: true, Force: true},
			"docker://127.0.0.1:1/ww/test:1":    {PlainHTTP: true, Force: true},
			"oci:" + layout + ":test":           {Platform: "linux", Force: true},
			"oci:" + layout + ":missing":        {Force: true},
		} {
			if _, err := Import(context.Background(), cfg, src, "img1", o); err == nil {
				t.Fatalf("import of %s succeeded", src)
			}
		}
		compareTrees(t, before, snapshot(t, cfg.ImageRootfs("img1"), nil, true))
		// A corrupt layer blob is caught by its digest.
		bad := filepath.Join(t.TempDir(), "layout")
		writeOCILayout(t, bad, "test")
		var idx v1.Index
		data, _ := os.ReadFile(filepath.Join(bad, "index.json"))
		json.Unmarshal(data, &idx)
		data, _ = os.ReadFile(filepath.Join(bad, "blobs/sha256", idx.Manifests[0].Digest.Encoded()))
		var man v1.Manifest
		json.Unmarshal(data, &man)
		last := filepath.Join(bad, "blobs/sha256", man.Layers[2].Digest.Encoded())
		blob, _ := os.ReadFile(last)
		copy := bytes.Replace(blob, []byte("a file became a dir"), []byte("A FILE BECAME A DIR"), 1)
		os.WriteFile(last, copy, 0o644)
		_, err := Import(context.Background(), cfg, "oci:"+bad+":test", "corrupt", ImportOptions{})
		if err == nil || !strings.Contains(err.Error(), "digest") || Exists(cfg, "corrupt") {
			t.Fatalf("corrupt blob: %v", err)
		}
	})
}

// writeMultiArchLayout writes an OCI layout whose tag names an index of
// two images, one per architecture, each with a file naming its arch.
func writeMultiArchLayout(t testing.TB, dir, tag string) {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	os.MkdirAll(blobs, 0o755)
	put := func(data []byte, mt string) v1.Descriptor {
		d := digest.FromBytes(data)
		os.WriteFile(filepath.Join(blobs, d.Encoded()), data, 0o644)
		return v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(data))}
	}
	var manifests []v1.Descriptor
	for _, arch := range []string{"amd64", "arm64"} {
		raw := tarLayer(t, []layerEntry{dirE("etc", 0o755), fileE("etc/arch", 0o644, arch)})
		layer := put(raw, v1.MediaTypeImageLayer)
		cfg := v1.Image{Platform: v1.Platform{OS: "linux", Architecture: arch},
			RootFS: v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{layer.Digest}}}
		cfgJSON, _ := json.Marshal(cfg)
		m := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
			Config: put(cfgJSON, v1.MediaTypeImageConfig), Layers: []v1.Descriptor{layer}}
		mJSON, _ := json.Marshal(m)
		d := put(mJSON, v1.MediaTypeImageManifest)
		d.Platform = &v1.Platform{OS: "linux", Architecture: arch}
		manifests = append(manifests, d)
	}
	inner, _ := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: manifests})
	d := put(inner, v1.MediaTypeImageIndex)
	d.Annotations = map[string]string{v1.AnnotationRefName: tag}
	outer, _ := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{d}})
	os.WriteFile(filepath.Join(dir, "index.json"), outer, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

func TestImportPlatform(t *testing.T) {
	requireRoot(t)
	layout := filepath.Join(t.TempDir(), "multi")
	writeMultiArchLayout(t, layout, "multi")
	reg := startRegistry(t)
	copyImage(t, "oci:"+layout+":multi", "docker://"+reg+"/ww/multi:1") // copies the host's instance only
	cfg := sandbox(t)
	for _, c := range []struct{ platform, want string }{{"", "amd64"}, {"linux/arm64", "arm64"}, {"linux/amd64", "amd64"},
		{"arm64", "arm64"}} { // upstream's --platform/--arch: an architecture alone
		name := "m-" + strings.ReplaceAll(c.platform, "/", "-")
		m, err := Import(context.Background(), cfg, "oci:"+layout+":multi", name, ImportOptions{Platform: c.platform})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(filepath.Join(cfg.ImageRootfs(name), "etc/arch"))
		if string(got) != c.want || m.Platform != "linux/"+c.want {
			t.Fatalf("--platform %q: got the %s image (%s)", c.platform, got, m.Platform)
		}
	}
	if _, err := Import(context.Background(), cfg, "oci:"+layout+":multi", "m-s390x", ImportOptions{Platform: "linux/s390x"}); err == nil || Exists(cfg, "m-s390x") {
		t.Fatalf("a platform the image lacks: %v", err)
	}
	if _, err := Import(context.Background(), cfg, "docker://"+reg+"/ww/multi:1", "m-reg", ImportOptions{PlainHTTP: true}); err != nil {
		t.Fatal(err)
	}
	// The registry holds the amd64 image alone: asking it for arm64 fails.
	if _, err := Import(context.Background(), cfg, "docker://"+reg+"/ww/multi:1", "m-reg-arm", ImportOptions{PlainHTTP: true, Platform: "linux/arm64"}); err == nil || !strings.Contains(err.Error(), "linux/arm64") || Exists(cfg, "m-reg-arm") {
		t.Fatalf("single-arch image asked for another platform: %v", err)
	}
}
