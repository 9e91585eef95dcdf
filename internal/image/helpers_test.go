package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/containers/storage/pkg/reexec"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// require skips a test whose prerequisite is missing, except under CI,
// where every prerequisite must be there.
func require(t testing.TB, ok bool, what string) {
	t.Helper()
	testenv.Need(t, what, ok)
}

func requireRoot(t testing.TB) { require(t, os.Geteuid() == 0, "the test needs root") }

func requireTool(t testing.TB, tools ...string) {
	for _, tool := range tools {
		_, err := exec.LookPath(tool)
		require(t, err == nil, tool+" is not installed (test/deps.sh installs it)")
	}
}

func requireLong(t testing.TB) {
	testenv.Long(t, "slow test")
}

// sandbox returns a config whose every path is under a temp dir.
func sandbox(t testing.TB) *config.Config {
	t.Helper()
	dir := t.TempDir()
	file, err := config.WriteSandbox(dir, config.SandboxOptions{Ipaddr: "10.0.0.1", Netmask: "255.255.255.0", Port: 9873})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func run(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fileState is everything about one file the tests compare between trees.
type fileState struct {
	Type     string
	Perm     fs.FileMode // permission, setuid, setgid and sticky bits
	UID, GID uint32
	Target   string // symlink target
	Content  string // sha256 of a regular file
	Rdev     uint64
	LinkedTo string // first path (in walk order) sharing this file's inode
	Mtime    int64
}

// snapshot describes every path below root except those skip names.
func snapshot(t testing.TB, root string, skip func(rel string) bool, withMtime bool) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		s := fileState{Perm: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), UID: st.Uid, GID: st.Gid}
		// Directory times move with their contents, and GNU cpio does not
		// restore a symlink's: compare the others.
		if withMtime && !fi.IsDir() && fi.Mode().Type() != fs.ModeSymlink {
			s.Mtime = st.Mtim.Sec
		}
		switch fi.Mode().Type() {
		case 0:
			s.Type = "file"
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			s.Content = hex.EncodeToString(sum[:])
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					s.LinkedTo = first
				} else {
					inodes[st.Ino] = rel
				}
			}
		case fs.ModeDir:
			s.Type = "dir"
		case fs.ModeSymlink:
			s.Type = "symlink"
			s.Target, _ = os.Readlink(p)
		case fs.ModeDevice:
			s.Type, s.Rdev = "block", st.Rdev
		case fs.ModeDevice | fs.ModeCharDevice:
			s.Type, s.Rdev = "char", st.Rdev
		case fs.ModeNamedPipe:
			s.Type = "fifo"
		case fs.ModeSocket:
			s.Type = "socket"
		default:
			s.Type = fi.Mode().Type().String()
		}
		out[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// compareTrees fails the test with every difference between two snapshots.
func compareTrees(t testing.TB, want, got map[string]fileState) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("missing %s (%s)", p, w.Type))
		case g != w:
			diffs = append(diffs, fmt.Sprintf("%s: want %+v, got %+v", p, w, g))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra %s (%s)", p, g.Type))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		if len(diffs) > 40 {
			diffs = append(diffs[:40], fmt.Sprintf("... and %d more", len(diffs)-40))
		}
		t.Fatalf("trees differ:\n%s", strings.Join(diffs, "\n"))
	}
	if len(want) == 0 {
		t.Fatal("compared two empty trees")
	}
}

const (
	helperEnv       = "WWIMAGE_HELPER_BUILD"
	helperImportEnv = "WWIMAGE_HELPER_IMPORT" // SOURCE=NAME
)

func TestMain(m *testing.M) {
	// containers/storage re-executes the binary for some layer operations.
	if reexec.Init() {
		return
	}
	if name := os.Getenv(helperEnv); name != "" {
		os.Exit(helperBuild(name))
	}
	if spec := os.Getenv(helperImportEnv); spec != "" {
		os.Exit(helperImport(spec))
	}
	os.Exit(m.Run())
}
