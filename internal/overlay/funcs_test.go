package overlay

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/sshkey"
)

// TestTemplateFunctions builds a site overlay that uses every function
// and kind of entry, and reads the image back with GNU cpio.
func TestTemplateFunctions(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	root := filepath.Join(sb.cfg.SiteOverlayDir(), "custom")
	writeFiles(t, filepath.Join(root, "rootfs"), map[string]string{
		"usr/bin/tool":       "#!/bin/sh\necho tool\n",
		"etc/multi.ww":       `{{ skip }}{{ file "a" }}A {{ .Id }}{{ file "/etc/b" }}{{ softlink "/etc/a" }}{{ file "sub/c" }}{{ mode 0640 }}{{ owner 7 8 }}C`,
		"etc/img.ww":         `{{ includeImage "/etc/hostname" }}|{{ includeImage "/etc/none" }}|{{ includeImage "/../../../../etc/hostname" }}`,
		"etc/clusterwide.ww": `{{ len .AllNodes }} nodes, {{ .Fqdn }}`,
		"etc/motd":           "plain\n",
	})
	os.Chmod(filepath.Join(root, "rootfs/usr/bin/tool"), 0o755)
	os.Symlink("/etc/hostname", filepath.Join(root, "rootfs/etc/link"))
	os.WriteFile(filepath.Join(root, AttributesFile), []byte("usr/bin/tool 4750 0:5\netc/motd - 1000:1000\n"), 0o644)
	writeFiles(t, sb.cfg.ImageRootfs("rocky"), map[string]string{"etc/hostname": "imagehost"})

	db := sampleDB(t)
	for _, p := range db.Profiles {
		p.SystemOverlay = node.List{"custom"}
		p.RuntimeOverlay = nil
	}
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	if _, err := b.Build(db, nil); err != nil {
		t.Fatal(err)
	}
	parts, err := Parts(sb.cfg, "n1", System)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 {
		t.Fatalf("want static, cluster and node parts, got %v", parts)
	}
	list := cpioListing(t, parts)
	want := map[string]string{
		"usr/bin/tool":              "-rwsr-x--- 0 5",
		"etc/motd":                  "-rw-r--r-- 1000 1000",
		"etc/link -> /etc/hostname": "lrwxrwxrwx 0 0",
		"etc/a":                     "-rw-r--r-- 0 0",
		"etc/b -> /etc/a":           "lrwxrwxrwx 0 0",
		"etc/sub":                   "drwxr-xr-x 0 0",
		"etc/sub/c":                 "-rw-r----- 7 8",
		"etc/img":                   "-rw-r--r-- 0 0",
		"etc/clusterwide":           "-rw-r--r-- 0 0",
	}
	for p, w := range want {
		if list[p] != w {
			t.Errorf("%s: cpio says %q, want %q", p, list[p], w)
		}
	}
	if _, ok := list["etc/multi"]; ok {
		t.Error("the skipped output etc/multi is in the image")
	}
	dir := t.TempDir()
	for _, p := range parts {
		cmd := exec.Command("sh", "-c", `gzip -dc "$1" | cpio -i -d --quiet --no-absolute-filenames`, "sh", p)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cpio -i: %v: %s", err, out)
		}
	}
	for file, content := range map[string]string{
		"etc/a": "A n1", "etc/sub/c": "C", "etc/img": "imagehost||imagehost",
		"etc/clusterwide": "3 nodes, ctl.cluster", "usr/bin/tool": "#!/bin/sh\necho tool\n",
	} {
		if got, _ := os.ReadFile(filepath.Join(dir, file)); string(got) != content {
			t.Errorf("%s = %q, want %q", file, got, content)
		}
	}
	// n3 has no image: includeImage gives "".
	outs, err := b.Render(db, "custom", "etc/img.ww", "n3")
	if err != nil || string(outs[0].Data) != "||" {
		t.Fatalf("n3 img: %v %v", outs, err)
	}
}

// TestIncludeImageStaysInImage: a symlink in the image cannot make a
// template read the controller's files.
func TestIncludeImageStaysInImage(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	root := filepath.Join(sb.cfg.SiteOverlayDir(), "evil", "rootfs")
	writeFiles(t, root, map[string]string{"etc/x.ww": `{{ includeImage "/etc/evil" }}`})
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("controller secret"), 0o600)
	os.Symlink(secret, filepath.Join(sb.cfg.ImageRootfs("rocky"), "etc/evil"))
	_, err := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot}).Render(sampleDB(t), "evil", "etc/x.ww", "n1")
	if err == nil || strings.Contains(err.Error(), "controller secret") {
		t.Fatalf("includeImage followed a symlink out of the image: %v", err)
	}
	if !strings.Contains(err.Error(), "overlay evil, file etc/x.ww line 1, node n1") {
		t.Fatalf("error does not say where: %v", err)
	}
}

// TestBadTemplateOutputs: a template cannot write outside the image.
func TestBadTemplateOutputs(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	for i, text := range []string{`{{ file "../../etc/passwd" }}x`, `{{ file "" }}`, `{{ mode 99999 }}`, `{{ owner -1 0 }}`, `{{ include "/nonexistent" }}`} {
		name := "bad" + string(rune('a'+i))
		writeFiles(t, filepath.Join(sb.cfg.SiteOverlayDir(), name, "rootfs"), map[string]string{"etc/x.ww": text})
		_, err := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot}).Render(sampleDB(t), name, "etc/x.ww", "n1")
		if err == nil {
			t.Errorf("%s: no error", text)
		} else if !strings.Contains(err.Error(), "overlay "+name+", file etc/x.ww line 1") {
			t.Errorf("%s: %v", text, err)
		}
	}
}

func TestAttributesErrors(t *testing.T) {
	for _, bad := range []string{"a", "a 999 -", "a - x:y", "../a - -", "a 0644 1"} {
		if _, err := ParseAttributes("attributes", []byte(bad+"\n")); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	a, err := ParseAttributes("attributes", []byte("# c\n\netc/x 0600 1:2\nb - -\n"))
	if err != nil || a["etc/x"] != (Attr{Mode: 0o600, UID: 1, GID: 2}) || a["b"] != (Attr{-1, -1, -1}) {
		t.Fatalf("%v %v", a, err)
	}
	back, err := ParseAttributes("x", a.Marshal())
	if err != nil || len(back) != 2 || back["etc/x"] != a["etc/x"] {
		t.Fatalf("round trip: %v %v", back, err)
	}
}

// TestNewHostKeyTypes makes one key of each type and reads it back.
func TestNewHostKeyTypes(t *testing.T) {
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		k, err := sshkey.New(typ, "root@n1")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(k.Private, "OPENSSH PRIVATE KEY") || !strings.HasSuffix(k.Public, " root@n1\n") {
			t.Fatalf("%s: %q", typ, k.Public)
		}
		if _, err := exec.LookPath("ssh-keygen"); err == nil {
			f := filepath.Join(t.TempDir(), "k")
			os.WriteFile(f, []byte(k.Private), 0o600)
			out, err := exec.Command("ssh-keygen", "-y", "-f", f).Output()
			if err != nil || !strings.HasPrefix(k.Public, strings.TrimSpace(string(out))) {
				t.Fatalf("%s: ssh-keygen -y says %q (%v), we said %q", typ, out, err, k.Public)
			}
		}
	}
	if _, err := sshkey.New("dsa", "x"); err == nil {
		t.Fatal("dsa accepted")
	}
}

// TestBrokenTemplateSiblings: a template that does not parse fails only
// itself; its overlay's other templates render.
func TestBrokenTemplateSiblings(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	writeFiles(t, filepath.Join(sb.cfg.SiteOverlayDir(), "mixed", "rootfs"), map[string]string{
		"etc/good.ww":   "{{ .Id }} ok\n",
		"etc/broken.ww": "{{ .Id \n",
	})
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := sampleDB(t)
	outs, err := b.Render(db, "mixed", "etc/good.ww", "n1")
	if err != nil || len(outs) != 1 || string(outs[0].Data) != "n1 ok\n" {
		t.Fatalf("good sibling: %v %v", outs, err)
	}
	if _, err := b.Render(db, "mixed", "etc/broken.ww", "n1"); err == nil || !strings.Contains(err.Error(), "etc/broken.ww") {
		t.Fatalf("broken template: %v", err)
	}
}

// TestFilePlacement: file() names beside the template, or from the root.
func TestFilePlacement(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	writeFiles(t, filepath.Join(sb.cfg.SiteOverlayDir(), "place", "rootfs"), map[string]string{
		"etc/sub/t.ww": `pre{{ file "a" }}A{{ file "/opt/b" }}B{{ file "../c" }}C`,
		"etc/l.ww":     `{{ softlink "/x" }}{{ file "m" }}M`,
		"etc/ab.ww":    `before{{ abort }}after`,
	})
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	db := sampleDB(t)
	got := renderAllOf(t, b, db, "place", "etc/sub/t.ww")
	want := map[string]string{"etc/sub/a": "A", "opt/b": "B", "etc/c": "C"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v (text before the first file is dropped)", got, want)
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s = %q, want %q", p, got[p], w)
		}
	}
	outs, err := b.Render(db, "place", "etc/l.ww", "n1")
	if err != nil || len(outs) != 2 || outs[0].Path != "etc/l" || outs[0].Link != "/x" || outs[1].Path != "etc/m" {
		t.Fatalf("a symlink before the first file is kept: %+v %v", outs, err)
	}
	_, err = b.Render(db, "place", "etc/ab.ww", "n1")
	var ab *AbortedError
	if !errors.As(err, &ab) || string(ab.Text) != "before" {
		t.Fatalf("abort: %v", err)
	}
}
