package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/containers/storage/pkg/archive"
	"golang.org/x/sys/unix"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// Meta is what the store records about an image beside its rootfs.
type Meta struct {
	Source   string    `json:"source"`
	Digest   string    `json:"digest,omitempty"`
	Platform string    `json:"platform,omitempty"`
	Imported time.Time `json:"imported"`
}

const metaFile = "image.json"

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// ValidName reports whether name can name an image: letters, digits and
// . _ + -, not starting with a dot (those are the store's temporaries).
func ValidName(name string) error {
	if len(name) > 200 || !nameRE.MatchString(name) {
		return fmt.Errorf("image name %q is invalid (use letters, digits, '.', '_', '+', '-')", name)
	}
	return nil
}

// Exists reports whether image name has a rootfs in the store.
func Exists(cfg *config.Config, name string) bool {
	if ValidName(name) != nil {
		return false
	}
	st, err := os.Stat(cfg.ImageRootfs(name))
	return err == nil && st.IsDir()
}

func mustExist(cfg *config.Config, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if !Exists(cfg, name) {
		return fmt.Errorf("image %q does not exist", name)
	}
	return nil
}

// List returns the names of the images in the store, sorted.
func List(cfg *config.Config) ([]string, error) {
	ents, err := os.ReadDir(cfg.ImageStoreDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && ValidName(e.Name()) == nil && Exists(cfg, e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// ReadMeta returns an image's metadata; an image placed in the store by
// hand has none and gets an empty Meta.
func ReadMeta(cfg *config.Config, name string) (*Meta, error) {
	if err := mustExist(cfg, name); err != nil {
		return nil, err
	}
	m := &Meta{}
	data, err := os.ReadFile(filepath.Join(cfg.ImageDir(name), metaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("image %s: %s: %w", name, metaFile, err)
	}
	return m, nil
}

func writeMeta(dir string, m *Meta) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return safefile.WriteFile(filepath.Join(dir, metaFile), append(data, '\n'), 0o644)
}

// Users returns the nodes and profiles whose own `image name` is name
// (nodes that inherit it from a profile are listed through the profile),
// and the number of nodes that boot it after merging.
func Users(cfg *config.Config, name string) (nodes, profiles []string, booting int, err error) {
	db, err := node.Load(cfg.NodesConf())
	if err != nil {
		return nil, nil, 0, err
	}
	for _, n := range db.NodeNames() {
		if c := db.Nodes[n]; c != nil && c.ImageName == name {
			nodes = append(nodes, n)
		}
	}
	for _, p := range db.ProfileNames() {
		if c := db.Profiles[p]; c != nil && c.ImageName == name {
			profiles = append(profiles, p)
		}
	}
	all, err := db.AllMerged()
	if err != nil {
		return nil, nil, 0, err
	}
	for _, n := range all {
		if n.ImageName == name {
			booting++
		}
	}
	return nodes, profiles, booting, nil
}

// Delete removes an image's rootfs, metadata and built artifacts. It
// refuses while nodes boot the image, unless force.
func Delete(cfg *config.Config, name string, force bool) error {
	lock, err := lockExisting(cfg, name, true)
	if err != nil {
		return err
	}
	defer lock.unlock()
	if !force {
		_, _, n, err := Users(cfg, name)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("image %q is used by %d node(s); use --force to delete it anyway", name, n)
		}
	}
	// Move aside first so the image disappears at once, then remove.
	trash, err := os.MkdirTemp(cfg.ImageStoreDir(), "."+name+".delete-")
	if err != nil {
		return err
	}
	if err := os.Rename(cfg.ImageDir(name), filepath.Join(trash, "image")); err != nil {
		os.Remove(trash)
		return err
	}
	if err := os.RemoveAll(cfg.ImageProvisionDir(name)); err != nil {
		return err
	}
	return os.RemoveAll(trash)
}

// Copy duplicates image src as dst (rootfs and metadata; dst is built on
// its own).
func Copy(cfg *config.Config, src, dst string) error {
	if err := ValidName(dst); err != nil {
		return err
	}
	lock, err := lockExisting(cfg, src, false)
	if err != nil {
		return err
	}
	defer lock.unlock()
	if Exists(cfg, dst) {
		return fmt.Errorf("image %q already exists", dst)
	}
	m, err := ReadMeta(cfg, src)
	if err != nil {
		return err
	}
	return stage(cfg, dst, false, func(rootfs string) (*Meta, error) {
		if err := copyTree(context.Background(), cfg.ImageRootfs(src), rootfs); err != nil {
			return nil, err
		}
		return m, nil
	})
}

// copyTree copies a directory tree exactly (owners, modes, hard links,
// devices, xattrs) through containers/storage's tar round trip; it stops
// when ctx is cancelled.
func copyTree(ctx context.Context, src, dst string) error {
	rc, err := archive.TarWithOptions(src, &archive.TarOptions{Compression: archive.Uncompressed, CopyPass: true})
	if err != nil {
		return err
	}
	defer rc.Close()
	return archive.Untar(ctxReader{ctx, rc}, dst, &archive.TarOptions{})
}

// Rename renames image old to new and points the nodes and profiles that
// name it at the new name.
func Rename(cfg *config.Config, old, new string) error {
	if err := ValidName(new); err != nil {
		return err
	}
	if old == new {
		return fmt.Errorf("image %q: the new name is the old one", old)
	}
	lock, err := lockExisting(cfg, old, true)
	if err != nil {
		return err
	}
	defer lock.unlock()
	newLock, err := lockImage(cfg, new, true)
	if err != nil {
		return err
	}
	defer newLock.unlock()
	if Exists(cfg, new) {
		return fmt.Errorf("image %q already exists", new)
	}
	if _, err := os.Stat(cfg.ImageDir(new)); err == nil {
		return fmt.Errorf("%s is in the way", cfg.ImageDir(new))
	}
	if err := os.Rename(cfg.ImageDir(old), cfg.ImageDir(new)); err != nil {
		return err
	}
	if _, serr := os.Stat(cfg.NodesConf()); serr == nil {
		err = node.Update(cfg.NodesConf(), func(db *node.DB) error {
			for _, m := range []map[string]*node.Conf{db.Nodes, db.Profiles} {
				for _, c := range m {
					if c != nil && c.ImageName == old {
						c.ImageName = new
					}
				}
			}
			return nil
		})
	}
	if err != nil {
		// Leave the store as it was when nodes.conf could not follow.
		if rerr := os.Rename(cfg.ImageDir(new), cfg.ImageDir(old)); rerr != nil {
			return fmt.Errorf("%w (and moving the image back failed: %v)", err, rerr)
		}
		return err
	}
	// Built artifacts follow; a missing provision dir is fine (not built).
	oldP, newP := cfg.ImageProvisionDir(old), cfg.ImageProvisionDir(new)
	if _, err := os.Stat(oldP); err == nil {
		os.RemoveAll(newP)
		if err := os.Rename(oldP, newP); err != nil {
			return err
		}
	}
	return nil
}

// stage builds an image in a temporary directory of the store and moves it
// into place only when fill succeeded, so a failed or interrupted import
// leaves no half image and an existing image of that name untouched.
func stage(cfg *config.Config, name string, force bool, fill func(rootfs string) (*Meta, error)) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if !force && Exists(cfg, name) {
		return existsError(name)
	}
	// Nothing else uses the name meanwhile (a build or exec of the image
	// being replaced, another import); holding the lock, the temporaries
	// a killed import of this name left are safe to remove.
	lock, err := lockImage(cfg, name, true)
	if err != nil {
		return err
	}
	defer lock.unlock()
	store := cfg.ImageStoreDir()
	cleanStale(store, name)
	tmp, err := os.MkdirTemp(store, "."+name+".import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return err
	}
	m, err := fill(rootfs)
	if err != nil {
		return err
	}
	if err := writeMeta(tmp, m); err != nil {
		return err
	}
	dir := cfg.ImageDir(name)
	if _, err := os.Lstat(dir); err == nil {
		if !force {
			return existsError(name)
		}
		// Swap atomically: readers see the old image or the new one, and
		// the deferred RemoveAll takes the old one away.
		return unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE)
	}
	return os.Rename(tmp, dir)
}

// cleanStale removes temporaries a killed import or delete of name left.
func cleanStale(store, name string) {
	for _, kind := range []string{".import-", ".delete-"} {
		matches, _ := filepath.Glob(filepath.Join(store, "."+name+kind+"*"))
		for _, m := range matches {
			os.RemoveAll(m)
		}
	}
}
