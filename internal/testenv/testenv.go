// Package testenv is what tests need from the machine they run on:
// the CI rule for missing prerequisites, running commands, and running Go
// code inside a namespace the test made.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Need skips a test whose prerequisites are missing, except under CI
// (CI=true), where they must be there and their absence fails the test.
func Need(t testing.TB, why string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI: %s", why)
	}
	t.Skip(why)
}

// Long skips a slow test under -short, except under CI, which runs
// everything.
func Long(t testing.TB, why string) {
	t.Helper()
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip(why + "; -short skips it")
	}
}

// Run runs a command and fails the test with its output if it fails.
func Run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// InNetns runs fn on an OS thread that has entered the named namespace
// (from `ip netns add`). The thread is never returned to the pool: the
// goroutine ends still locked, so the runtime discards the thread.
func InNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// RepoDatadir returns a datadir (warewulf.conf `paths: datadir`) whose
// warewulf/overlays is this checkout's overlays/, so tests build the
// shipped overlays from source. root is the checkout, relative to the
// test's package or absolute.
func RepoDatadir(t testing.TB, root string) string {
	t.Helper()
	src, err := filepath.Abs(filepath.Join(root, "overlays"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "warewulf"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(src, filepath.Join(dir, "warewulf", "overlays")); err != nil {
		t.Fatal(err)
	}
	return dir
}
