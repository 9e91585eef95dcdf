package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// busy fails the test unless err is the one-line refusal of a busy image
// that names pid.
func busy(t *testing.T, what string, err error, name string, pid int) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s of a busy image succeeded", what)
	}
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("image %q is busy", name)) || !strings.Contains(msg, fmt.Sprintf("pid %d ", pid)) || strings.Contains(msg, "\n") {
		t.Fatalf("%s: want a one-line busy error naming pid %d, got %q", what, pid, msg)
	}
}

// storeEntries lists the store's top level (images and temporaries).
func storeEntries(t *testing.T, store string) string {
	t.Helper()
	ents, err := os.ReadDir(store)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// waitHeld waits until some process holds image name's lock.
func waitHeld(t *testing.T, store, name string) {
	t.Helper()
	path := filepath.Join(store, "."+name+".lock")
	for deadline := time.Now().Add(30 * time.Second); len(lockHolders(path)) == 0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("nobody took %s", path)
		}
	}
}

// A build in another process keeps the image from being deleted, renamed
// or replaced under it: each is refused at once, naming the build's
// process, and changes nothing; the build completes.
func TestBuildingImageIsNotDeletedRenamedOrReplaced(t *testing.T) {
	requireRoot(t)
	requireLong(t)
	cfg := sandbox(t)
	src := bigRootfs(t, 8)
	ctx := context.Background()
	if _, err := Import(ctx, cfg, src, "img", ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	rootfs := snapshot(t, cfg.ImageRootfs("img"), nil, true)

	cmd, stderr := startHelper(t, cfg, helperEnv+"=img")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if tmp := temps(cfg.ImageProvisionDir("img")); len(tmp) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the build never started writing")
		}
	}
	store := storeEntries(t, cfg.ImageStoreDir())
	pid := cmd.Process.Pid
	busy(t, "delete", Delete(cfg, "img", true), "img", pid)
	busy(t, "rename", Rename(cfg, "img", "renamed"), "img", pid)
	_, err := Import(ctx, cfg, src, "img", ImportOptions{Force: true})
	busy(t, "import --force", err, "img", pid)
	if now := storeEntries(t, cfg.ImageStoreDir()); now != store {
		t.Fatalf("the refused operations changed the store: %q, then %q", store, now)
	}
	if len(temps(cfg.ImageProvisionDir("img"))) == 0 {
		t.Fatal("the build finished before the refused operations: make the rootfs bigger")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the build failed: %v\n%s", err, stderr.String())
	}
	compareTrees(t, rootfs, snapshot(t, cfg.ImageRootfs("img"), nil, true))
	if _, err := BuiltArtifacts(cfg, "img", ""); err != nil {
		t.Fatal(err)
	}
	// Once the build is done they go through, and no lock file stays.
	if err := Rename(cfg, "img", "renamed"); err != nil {
		t.Fatal(err)
	}
	if err := Delete(cfg, "renamed", true); err != nil {
		t.Fatal(err)
	}
	if now := storeEntries(t, cfg.ImageStoreDir()); now != "" {
		t.Fatalf("left in the store: %s", now)
	}
}

// An import, delete or rename in progress (the exclusive lock, held here
// as one of them holds it) refuses everything else on the image; shared
// holders (exec, builds, copies) run side by side and keep the image from
// being moved.
func TestImageLockSharedAndExclusive(t *testing.T) {
	requireRoot(t)
	cfg := sandbox(t)
	ctx := context.Background()
	if _, err := Import(ctx, cfg, busyboxRootfs(t), "bb", ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Copy(cfg, "bb", "other"); err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()

	l, err := lockImage(cfg, "bb", true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(ctx, cfg, "bb", BuildOptions{})
	busy(t, "build", err, "bb", pid)
	_, err = Exec(ctx, cfg, "bb", []string{"/bin/true"}, ExecOptions{})
	busy(t, "exec", err, "bb", pid)
	busy(t, "copy", Copy(cfg, "bb", "bb2"), "bb", pid)
	_, err = SyncUser(cfg, "bb", SyncUserOptions{Write: true})
	busy(t, "syncuser", err, "bb", pid)
	busy(t, "delete", Delete(cfg, "bb", true), "bb", pid)
	busy(t, "rename to it", Rename(cfg, "other", "bb"), "bb", pid)
	if _, err := os.Stat(cfg.ImageProvisionDir("bb")); !os.IsNotExist(err) {
		t.Fatal("a refused build made the provision dir")
	}
	l.unlock()
	if now := storeEntries(t, cfg.ImageStoreDir()); now != "bb other" {
		t.Fatalf("store after the lock was released: %q", now)
	}

	// A shell in the image: builds and copies run beside it, delete,
	// rename and replacing import wait for it to end.
	in, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := Exec(ctx, cfg, "bb", []string{"/bin/cat"}, ExecOptions{Stdin: in, Stdout: io.Discard})
		done <- err
	}()
	t.Cleanup(func() { w.Close() })
	waitHeld(t, cfg.ImageStoreDir(), "bb")
	if _, err := Build(ctx, cfg, "bb", BuildOptions{}); err != nil {
		t.Fatalf("build beside exec: %v", err)
	}
	if err := Copy(cfg, "bb", "bb2"); err != nil {
		t.Fatalf("copy beside exec: %v", err)
	}
	busy(t, "delete", Delete(cfg, "bb", true), "bb", pid)
	busy(t, "rename", Rename(cfg, "bb", "bb3"), "bb", pid)
	_, err = Import(ctx, cfg, cfg.ImageRootfs("bb2"), "bb", ImportOptions{Force: true})
	busy(t, "import --force", err, "bb", pid)
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := Delete(cfg, "bb", true); err != nil {
		t.Fatal(err)
	}
	if now := storeEntries(t, cfg.ImageStoreDir()); now != "bb2 other" {
		t.Fatalf("store at the end: %q", now)
	}
}
