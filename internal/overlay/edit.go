package overlay

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// Create makes an empty site overlay.
func Create(cfg *config.Config, name string) (*Overlay, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if o, err := Find(cfg, name); err == nil {
		return nil, fmt.Errorf("overlay %s already exists in %s", name, o.Dir)
	}
	o := &Overlay{Name: name, Dir: filepath.Join(cfg.SiteOverlayDir(), name), Site: true}
	if err := os.MkdirAll(o.Rootfs(), 0o755); err != nil {
		return nil, err
	}
	return o, nil
}

// Delete removes a site overlay, or one file or empty directory of it.
// Shipped overlays cannot be deleted; deleting a site copy brings the
// shipped one back.
func Delete(cfg *config.Config, name, file string) error {
	o, err := Find(cfg, name)
	if err != nil {
		return err
	}
	if !o.Site {
		return fmt.Errorf("overlay %s is shipped with warewulf (%s) and cannot be deleted", name, o.Dir)
	}
	if file == "" {
		return os.RemoveAll(o.Dir)
	}
	p, err := pathIn(o, file)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("overlay %s: %w", name, unwrapPath(err))
	}
	attrs, err := ReadAttributes(o)
	if err != nil {
		return err
	}
	rel, _ := CleanPath(file)
	if _, ok := attrs[rel]; ok {
		delete(attrs, rel)
		return attrs.Write(o)
	}
	return nil
}

// pathIn resolves file inside o's rootfs.
func pathIn(o *Overlay, file string) (string, error) {
	rel, err := CleanPath(file)
	if err != nil {
		return "", err
	}
	return filepath.Join(o.Rootfs(), filepath.FromSlash(rel)), nil
}

// SiteCopy returns the site overlay called name, copying the shipped one
// first if the site has none: the first change to a shipped overlay makes
// the site copy that shadows it from then on.
func SiteCopy(cfg *config.Config, name string) (*Overlay, error) {
	o, err := Find(cfg, name)
	if err != nil {
		return nil, err
	}
	if o.Site {
		return o, nil
	}
	dst := filepath.Join(cfg.SiteOverlayDir(), name)
	tmp := dst + ".tmp-copy"
	os.RemoveAll(tmp)
	if err := copyDir(o.Dir, tmp); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("copying overlay %s to %s: %w", name, dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &Overlay{Name: name, Dir: dst, Site: true, Shadows: true}, nil
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case info.Mode().IsRegular():
			return copyFile(p, target, info.Mode().Perm())
		}
		return fmt.Errorf("%s: not a file, directory or symlink", p)
	})
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return safefile.WriteFrom(dst, perm, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// Import copies a file of the controller into an overlay at dest (default:
// the same path), keeping its mode.
func Import(cfg *config.Config, name, src, dest string) (string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("import: %s is not a regular file", src)
	}
	if dest == "" {
		abs, err := filepath.Abs(src)
		if err != nil {
			return "", err
		}
		dest = abs
	}
	rel, err := CleanPath(dest)
	if err != nil {
		return "", err
	}
	cur, err := Find(cfg, name)
	if err != nil {
		return "", err
	}
	// DEST naming a directory (by a trailing / or in the overlay) means
	// the file goes into it.
	if p, _ := pathIn(cur, rel); strings.HasSuffix(dest, "/") || isDir(p) {
		rel += "/" + filepath.Base(src)
	}
	o, err := SiteCopy(cfg, name)
	if err != nil {
		return "", err
	}
	p, _ := pathIn(o, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return rel, copyFile(src, p, st.Mode().Perm())
}

// Mkdir makes a directory in an overlay.
func Mkdir(cfg *config.Config, name, dir string, mode os.FileMode) error {
	if _, err := CleanPath(dir); err != nil {
		return err
	}
	o, err := SiteCopy(cfg, name)
	if err != nil {
		return err
	}
	p, _ := pathIn(o, dir)
	if err := os.MkdirAll(p, mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// Chmod sets an entry's mode, on disk and in the attributes file (git
// keeps only the executable bit, the attributes file keeps the rest).
func Chmod(cfg *config.Config, name, file string, mode uint32) error {
	if mode > 0o7777 {
		return fmt.Errorf("mode %o is not a file mode", mode)
	}
	return setAttr(cfg, name, file, func(a *Attr, p string) error {
		a.Mode = int64(mode)
		return os.Chmod(p, os.FileMode(mode&0o777)|modeBits(mode))
	})
}

func modeBits(m uint32) os.FileMode {
	var out os.FileMode
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

// Chown sets an entry's owner in the attributes file; files on disk keep
// the owner of whoever manages the overlay.
func Chown(cfg *config.Config, name, file string, uid, gid uint32) error {
	return setAttr(cfg, name, file, func(a *Attr, _ string) error {
		a.UID, a.GID = int64(uid), int64(gid)
		return nil
	})
}

func setAttr(cfg *config.Config, name, file string, change func(*Attr, string) error) error {
	rel, err := CleanPath(file)
	if err != nil {
		return err
	}
	// Check on the overlay as it is, so a typo makes no site copy.
	cur, err := Find(cfg, name)
	if err != nil {
		return err
	}
	if p, _ := pathIn(cur, rel); !exists(p) {
		return fmt.Errorf("overlay %s has no file %s", name, rel)
	}
	o, err := SiteCopy(cfg, name)
	if err != nil {
		return err
	}
	attrs, err := ReadAttributes(o)
	if err != nil {
		return err
	}
	a, ok := attrs[rel]
	if !ok {
		a = Attr{Mode: -1, UID: -1, GID: -1}
	}
	p, _ := pathIn(o, rel)
	if err := change(&a, p); err != nil {
		return err
	}
	attrs[rel] = a
	return attrs.Write(o)
}

// EditPath returns the file to hand to an editor: in the site copy (made
// if needed), with its parent directories. A new file starts empty.
func EditPath(cfg *config.Config, name, file string) (string, error) {
	rel, err := CleanPath(file)
	if err != nil {
		return "", err
	}
	o, err := SiteCopy(cfg, name)
	if err != nil {
		return "", err
	}
	p, _ := pathIn(o, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	if st, err := os.Lstat(p); err == nil && !st.Mode().IsRegular() {
		return "", fmt.Errorf("overlay %s: %s is not a regular file", name, rel)
	} else if errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return "", err
		}
	}
	return p, nil
}

// CheckTemplate parses a template file and reports its first error with
// overlay, file and line.
func CheckTemplate(name, rel, path string) error {
	if !strings.HasSuffix(rel, TemplateSuffix) {
		return nil
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	_, err = parseTemplate(name, Entry{Path: rel}, string(text))
	return err
}

// ReadFile returns one file of an overlay as stored (templates unrendered).
func ReadFile(cfg *config.Config, name, file string) ([]byte, error) {
	o, err := Find(cfg, name)
	if err != nil {
		return nil, err
	}
	p, err := pathIn(o, file)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("overlay %s: %s: %w", name, file, unwrapPath(err))
	}
	return data, nil
}
