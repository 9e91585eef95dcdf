package image

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// busyboxRootfs writes a root filesystem of busybox-static and a passwd.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	require(t, err == nil, "busybox-static is not installed")
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"bin", "etc", "tmp", "root"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755)
	for _, l := range []string{"sh", "cat", "ls", "echo", "touch", "id"} {
		os.Symlink("busybox", filepath.Join(root, "bin", l))
	}
	return root
}

// mountsUnder lists the host's mount points below dir (other processes may
// mount elsewhere meanwhile).
func mountsUnder(t *testing.T, dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}

func TestExec(t *testing.T) {
	requireRoot(t)
	cfg := sandbox(t)
	ctx := context.Background()
	if _, err := Import(ctx, cfg, busyboxRootfs(t), "bb", ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	shared := t.TempDir()
	os.WriteFile(filepath.Join(shared, "hello"), []byte("from the controller"), 0o644)
	cfg.ImageMounts = append(cfg.ImageMounts, config.MountConf{Source: shared, Dest: "/mnt/shared", ReadOnly: true})
	var out, errOut bytes.Buffer
	script := `cat /mnt/shared/hello; echo; ls /proc/self/ >/dev/null && echo proc; ls /sys/kernel >/dev/null && echo sys;
		ls /dev/null && touch /tmp/made-inside; touch /mnt/shared/nope 2>/dev/null || echo read-only; exit 7`
	code, err := Exec(ctx, cfg, "bb", []string{"/bin/sh", "-c", script}, ExecOptions{Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	if code != 7 {
		t.Fatalf("exit status %d, want 7 (stderr %q)", code, errOut.String())
	}
	for _, want := range []string{"from the controller", "proc", "sys", "/dev/null", "read-only"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s\n%s", want, out.String(), errOut.String())
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.ImageRootfs("bb"), "tmp/made-inside")); err != nil {
		t.Fatal("a file made inside the image is not in its rootfs")
	}
	if _, err := os.Stat(filepath.Join(shared, "nope")); err == nil {
		t.Fatal("a read-only image mount was writable")
	}
	if leaked := mountsUnder(t, cfg.ImageRootfs("bb")); len(leaked) > 0 {
		t.Fatalf("mounts leaked into the host namespace: %v", leaked)
	}
	if code, err := Exec(ctx, cfg, "bb", []string{"/no/such/cmd"}, ExecOptions{Stderr: &errOut}); err != nil || code != 127 {
		t.Fatalf("missing command: %d %v", code, err)
	}
	if _, err := Exec(ctx, cfg, "nope", []string{"/bin/sh"}, ExecOptions{}); err == nil {
		t.Fatal("exec in a missing image succeeded")
	}
}

func TestSyncUser(t *testing.T) {
	requireRoot(t)
	cfg := sandbox(t)
	root := busyboxRootfs(t)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\nbob:x:1002:1002::/home/bob:/bin/sh\nsvc:x:999:999::/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nalice:x:1001:\nbob:x:1002:alice\nsvc:x:999:\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "home/alice"), 0o700)
	os.Chown(filepath.Join(root, "home/alice"), 1001, 1001)
	os.WriteFile(filepath.Join(root, "home/alice/tool"), []byte("x"), 0o755)
	os.Chown(filepath.Join(root, "home/alice/tool"), 1001, 1002)
	syscall.Chmod(filepath.Join(root, "home/alice/tool"), 0o6755)
	os.Symlink("tool", filepath.Join(root, "home/alice/link"))
	os.Lchown(filepath.Join(root, "home/alice/link"), 1001, 1001)
	ctx := context.Background()
	if _, err := Import(ctx, cfg, root, "u", ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	hp, hg := filepath.Join(host, "passwd"), filepath.Join(host, "group")
	os.WriteFile(hp, []byte("root:x:0:0::/root:/bin/bash\nalice:x:2001:2001::/home/alice:/bin/bash\nbob:x:1002:1002::/home/bob:/bin/bash\ncarol:x:3000:3000::/:/bin/bash\n"), 0o644)
	os.WriteFile(hg, []byte("root:x:0:\nalice:x:2001:\nbob:x:2002:\n"), 0o644)
	o := SyncUserOptions{HostPasswd: hp, HostGroup: hg}
	report, err := SyncUser(cfg, "u", o)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(report, ";") != "user alice: 1001 -> 2001;group alice: 1001 -> 2001;group bob: 1002 -> 2002" {
		t.Fatalf("report %q", report)
	}
	rootfs := cfg.ImageRootfs("u")
	if st := statOf(t, filepath.Join(rootfs, "home/alice")); st.Uid != 1001 {
		t.Fatal("changed without --write")
	}
	o.Write = true
	if _, err := SyncUser(cfg, "u", o); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string][2]uint32{"home/alice": {2001, 2001}, "home/alice/tool": {2001, 2002}, "home/alice/link": {2001, 2001}} {
		if st := statOf(t, filepath.Join(rootfs, p)); st.Uid != want[0] || st.Gid != want[1] {
			t.Fatalf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, want[0], want[1])
		}
	}
	if st := statOf(t, filepath.Join(rootfs, "home/alice/tool")); st.Mode&0o7777 != 0o6755 {
		t.Fatalf("setuid/setgid lost: %o", st.Mode&0o7777)
	}
	passwd, _ := os.ReadFile(filepath.Join(rootfs, "etc/passwd"))
	group, _ := os.ReadFile(filepath.Join(rootfs, "etc/group"))
	if !strings.Contains(string(passwd), "alice:x:2001:2001::/home/alice:/bin/sh\n") ||
		!strings.Contains(string(passwd), "bob:x:1002:2002:") || !strings.Contains(string(group), "bob:x:2002:alice\n") {
		t.Fatalf("passwd/group not rewritten:\n%s\n%s", passwd, group)
	}
	if r, _ := SyncUser(cfg, "u", o); len(r) != 0 {
		t.Fatalf("second run still changes: %v", r)
	}
	// A move onto an ID another image user keeps is refused.
	os.WriteFile(hp, []byte("svc:x:1002:999::/:/bin/false\n"), 0o644)
	if _, err := SyncUser(cfg, "u", o); err == nil || !strings.Contains(err.Error(), "bob") {
		t.Fatalf("conflict: %v", err)
	}
}

func statOf(t *testing.T, p string) *syscall.Stat_t {
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}
