package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// helperBuild runs in a child process (see TestMain): the interrupt tests
// start it to build an image, then kill it mid-build.
func helperBuild(name string) int {
	cfg, err := config.Load(os.Getenv("WW_CONFIG"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := Build(ctx, cfg, name, BuildOptions{Force: true}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	return 0
}

// bigRootfs writes a rootfs of makeRootfs plus blobs x 16 MB of
// incompressible data, for a build or import of seconds.
func bigRootfs(t *testing.T, blobs int) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "root")
	makeRootfs(t, src)
	buf := make([]byte, 16<<20)
	for i := 0; i < blobs; i++ {
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("usr/lib/blob%02d", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// startHelper starts this test binary as a helper (see TestMain) with
// env set, on cfg; the test kills it at the end if it still runs.
func startHelper(t *testing.T, cfg *config.Config, env string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env, "WW_CONFIG="+cfg.File())
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, stderr
}

func TestInterruptedBuildKeepsPreviousImage(t *testing.T) {
	requireRoot(t)
	requireLong(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cfg := sandbox(t)
			src := bigRootfs(t, 12)
			ctx := context.Background()
			if _, err := Import(ctx, cfg, src, "img", ImportOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := Build(ctx, cfg, "img", BuildOptions{}); err != nil {
				t.Fatal(err)
			}
			before, _ := BuiltArtifacts(cfg, "img", "")
			oldImage, _ := os.ReadFile(before.Image)
			oldInfo, _ := os.ReadFile(filepath.Join(cfg.ImageProvisionDir("img"), buildInfoFile))

			cmd, stderr := startHelper(t, cfg, helperEnv+"=img")
			// Wait until the new archive is being written, then interrupt.
			deadline := time.Now().Add(30 * time.Second)
			for {
				if tmp := temps(cfg.ImageProvisionDir("img")); len(tmp) > 0 {
					if st, err := os.Stat(tmp[0]); err == nil && st.Size() > 4<<20 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatal("the build never started writing")
				}
				time.Sleep(5 * time.Millisecond)
			}
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			if err == nil {
				t.Fatal("the build finished before the signal: make the rootfs bigger")
			}
			after, err := BuiltArtifacts(cfg, "img", "")
			if err != nil {
				t.Fatalf("after %s: %v", sig, err)
			}
			newImage, _ := os.ReadFile(after.Image)
			newInfo, _ := os.ReadFile(filepath.Join(cfg.ImageProvisionDir("img"), buildInfoFile))
			if !bytes.Equal(oldImage, newImage) || !bytes.Equal(oldInfo, newInfo) {
				t.Fatalf("after %s the previous image changed", sig)
			}
			left := temps(cfg.ImageProvisionDir("img"))
			if sig == syscall.SIGINT {
				if len(left) > 0 || !strings.Contains(stderr.String(), "context canceled") {
					t.Fatalf("SIGINT: temporaries %v, stderr %q", left, stderr.String())
				}
			}
			// The next build cleans up and succeeds.
			if _, err := Build(ctx, cfg, "img", BuildOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
			if left := temps(cfg.ImageProvisionDir("img")); len(left) > 0 {
				t.Fatalf("temporaries left after a good build: %v", left)
			}
		})
	}
}

func temps(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	return m
}

// helperImport runs in a child process: it imports SOURCE as NAME (--force)
// until a signal stops it.
func helperImport(spec string) int {
	src, name, _ := strings.Cut(spec, "=")
	cfg, err := config.Load(os.Getenv("WW_CONFIG"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := Import(ctx, cfg, src, name, ImportOptions{Force: true}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	return 0
}

func TestInterruptedImportKeepsPreviousImage(t *testing.T) {
	requireRoot(t)
	requireLong(t)
	big := bigRootfs(t, 16)
	tarball := filepath.Join(t.TempDir(), "big.tar")
	run(t, "", "tar", "-C", big, "-cf", tarball, ".")
	for _, c := range []struct {
		sig    syscall.Signal
		source string
	}{{syscall.SIGINT, big}, {syscall.SIGINT, tarball}, {syscall.SIGKILL, big}} {
		t.Run(c.sig.String()+"-"+filepath.Base(c.source), func(t *testing.T) {
			cfg := sandbox(t)
			small := filepath.Join(t.TempDir(), "small")
			makeRootfs(t, small)
			ctx := context.Background()
			if _, err := Import(ctx, cfg, small, "img", ImportOptions{}); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, cfg.ImageRootfs("img"), nil, true)
			cmd, stderr := startHelper(t, cfg, helperImportEnv+"="+c.source+"=img")
			deadline := time.Now().Add(30 * time.Second)
			for {
				m, _ := filepath.Glob(filepath.Join(cfg.ImageStoreDir(), ".img.import-*", "rootfs", "usr", "lib", "blob0*"))
				if len(m) > 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the import never started writing")
				}
				time.Sleep(2 * time.Millisecond)
			}
			cmd.Process.Signal(c.sig)
			if err := cmd.Wait(); err == nil {
				t.Fatal("the import finished before the signal")
			}
			compareTrees(t, before, snapshot(t, cfg.ImageRootfs("img"), nil, true))
			left, _ := filepath.Glob(filepath.Join(cfg.ImageStoreDir(), ".img.import-*"))
			if c.sig == syscall.SIGINT && len(left) > 0 {
				t.Fatalf("SIGINT left %v (stderr %q)", left, stderr.String())
			}
			if names, _ := List(cfg); len(names) != 1 {
				t.Fatalf("images after the interrupted import: %v", names)
			}
			// The next import of the name removes what a killed one left.
			if _, err := Import(ctx, cfg, small, "img", ImportOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
			if left, _ := filepath.Glob(filepath.Join(cfg.ImageStoreDir(), ".img.import-*")); len(left) > 0 {
				t.Fatalf("temporaries left after a good import: %v", left)
			}
		})
	}
}
