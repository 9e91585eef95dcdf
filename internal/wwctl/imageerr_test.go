package wwctl_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// An image that fails to build is reported once, with its cause: the
// command's error, not also a line of its own before it.
func TestImageBuildErrorOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ww")
	if out, err := exec.Command(wwctlBin, "genconfig", "sandbox", dir).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	s := &sandbox{t: t, dir: dir, conf: filepath.Join(dir, "warewulf.conf")}
	root := filepath.Join(t.TempDir(), "root")
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("x\n"), 0o644)
	s.ok("image", "import", root, "img")
	cfg, err := config.Load(s.conf)
	if err != nil {
		t.Fatal(err)
	}
	// A file where the image's provision directory goes: the build fails.
	blocked := cfg.ImageProvisionDir("img")
	os.MkdirAll(filepath.Dir(blocked), 0o755)
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs, code := s.run("image", "build", "img")
	if code == 0 {
		t.Fatal("the build did not fail")
	}
	if n := strings.Count(errs, "not a directory"); n != 1 {
		t.Errorf("the cause is reported %d times, want once:\n%s", n, errs)
	}
}
