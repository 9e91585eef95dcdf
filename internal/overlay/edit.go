package overlay

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
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

// Delete removes a site overlay, or one file or empty directory of an
// overlay (see DeleteFile). Shipped overlays cannot be deleted; deleting
// a site copy brings the shipped one back.
func Delete(cfg *config.Config, name, file string) error {
	if file != "" {
		return DeleteFile(cfg, name, file, DeleteOptions{})
	}
	o, err := Find(cfg, name)
	if err != nil {
		return err
	}
	if !o.Site {
		return fmt.Errorf("overlay %s is shipped with warewulf (%s) and cannot be deleted", name, o.Dir)
	}
	return os.RemoveAll(o.Dir)
}

// DeleteOptions are the choices of DeleteFile.
type DeleteOptions struct {
	Parents bool // remove the directories the deletion leaves empty
	Force   bool // remove a directory with what it holds
}

// DeleteFile removes one file or empty directory of an overlay (with
// Force, a directory with its contents), and with Parents the
// directories that leaves empty. A shipped overlay is copied to the site
// first, as upstream does: the shipped files stay as they are and the
// site copy, without the file, shadows them.
func DeleteFile(cfg *config.Config, name, file string, opt DeleteOptions) error {
	rel, err := CleanPath(file)
	if err != nil {
		return err
	}
	// Check on the overlay as it is, so a typo makes no site copy.
	cur, err := Find(cfg, name)
	if err != nil {
		return err
	}
	p, _ := pathIn(cur, rel)
	st, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("overlay %s has no file %s", name, rel)
	}
	if st.IsDir() && !opt.Force {
		if ents, err := os.ReadDir(p); err != nil || len(ents) > 0 {
			return fmt.Errorf("overlay %s: directory %s is not empty (--force deletes it with its files)", name, rel)
		}
	}
	o, err := SiteCopy(cfg, name)
	if err != nil {
		return err
	}
	p, _ = pathIn(o, rel)
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("overlay %s: %w", name, unwrapPath(err))
	}
	gone := []string{rel}
	if opt.Parents {
		root := o.Rootfs()
		for d := filepath.Dir(p); d != root && strings.HasPrefix(d, root+string(filepath.Separator)); d = filepath.Dir(d) {
			if os.Remove(d) != nil {
				break // not empty: the directories above are not either
			}
			r, _ := filepath.Rel(root, d)
			gone = append(gone, filepath.ToSlash(r))
		}
	}
	attrs, err := ReadAttributes(o)
	if err != nil {
		return err
	}
	changed := false
	for k := range attrs {
		// The deleted entry, what it held, and the emptied directories.
		if k == rel || strings.HasPrefix(k, rel+"/") || slices.Contains(gone, k) {
			delete(attrs, k)
			changed = true
		}
	}
	if changed {
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

// ImportOptions are the choices of Import.
type ImportOptions struct {
	Overwrite bool // replace a file already at the destination
	Parents   bool // make the destination's missing directories
}

// Import copies a file of the controller into an overlay at dest, keeping
// its mode. Without dest the file goes to SRC's path as given, as
// upstream: "importfile" lands at /importfile, "/etc/motd" at /etc/motd.
// It returns the path the file got in the overlay.
func Import(cfg *config.Config, name, src, dest string, opt ImportOptions) (string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("import: %s is not a regular file", src)
	}
	if dest == "" {
		dest = src
	}
	// Every check is on the overlay as it is, so a refused import makes
	// no site copy.
	cur, err := Find(cfg, name)
	if err != nil {
		return "", err
	}
	var rel string
	if dest != "" && path.Clean("/"+dest) == "/" {
		rel = filepath.Base(src) // DEST "/": the overlay's top
	} else {
		if rel, err = CleanPath(dest); err != nil {
			if dest == src {
				return "", fmt.Errorf("%w: give a destination", err)
			}
			return "", err
		}
		// DEST naming a directory (by a trailing / or in the overlay)
		// means the file goes into it.
		if p, _ := pathIn(cur, rel); strings.HasSuffix(dest, "/") || isDir(p) {
			rel += "/" + filepath.Base(src)
		}
	}
	p, _ := pathIn(cur, rel)
	if fi, err := os.Lstat(p); err == nil {
		if fi.IsDir() {
			return "", fmt.Errorf("overlay %s: /%s is a directory", name, rel)
		}
		if !opt.Overwrite {
			return "", fmt.Errorf("overlay %s: a file with that name already exists: /%s (--overwrite replaces it)", name, rel)
		}
	}
	dirMade := false
	if dir := filepath.Dir(p); !isDir(dir) {
		if !opt.Parents {
			return "", fmt.Errorf("overlay %s: directory /%s does not exist (--parents makes it)", name, path.Dir(rel))
		}
		if err := creatable(dir); err != nil {
			return "", fmt.Errorf("overlay %s: %w", name, err)
		}
		dirMade = true
	}
	o, err := SiteCopy(cfg, name)
	if err != nil {
		return "", err
	}
	p, _ = pathIn(o, rel)
	if dirMade {
		// As upstream: the directories get the file's mode with x
		// wherever it has r (a 0644 file makes 0755 directories).
		// The owner keeps rwx, or the file could not be written.
		m := st.Mode().Perm()
		if err := os.MkdirAll(filepath.Dir(p), m|(m&0o444)>>2|0o700); err != nil {
			return "", err
		}
	}
	return rel, copyFile(src, p, st.Mode().Perm())
}

// creatable checks that MkdirAll can make dir: the nearest existing
// ancestor must be a directory, not a file.
func creatable(dir string) error {
	d := dir
	for !exists(d) {
		d = filepath.Dir(d)
	}
	if !isDir(d) {
		return fmt.Errorf("%s is not a directory", d)
	}
	return nil
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
// the owner of whoever manages the overlay. A negative uid or gid keeps
// that one as it is (root unless the attributes file says otherwise).
func Chown(cfg *config.Config, name, file string, uid, gid int64) error {
	if uid < 0 && gid < 0 {
		return errors.New("chown: neither a UID nor a GID to set")
	}
	return setAttr(cfg, name, file, func(a *Attr, _ string) error {
		// The attributes file sets both or neither: unset is root.
		if a.UID < 0 {
			a.UID, a.GID = 0, 0
		}
		if uid >= 0 {
			a.UID = uid
		}
		if gid >= 0 {
			a.GID = gid
		}
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

// NewTemplateText is what a new template (.ww) file starts as in
// wwctl overlay edit: a short guide in comments, ending with the
// "autogenerated by warewulf" line upstream's new templates carry (site
// scripts look for it).
const NewTemplateText = `# A Warewulf template. The file is rendered once for each node and written
# without its .ww suffix. Between double braces it reads the node's data:
#
#   node name:        {{.Id}}
#   cluster:          {{.ClusterName}}
#   its interfaces:   {{range $name, $dev := .NetDevs}}{{$name}}={{$dev.Ipaddr}} {{end}}
#
# wwctl overlay info OVERLAY FILE lists what a template reads, and docs/overlays.md
# describes the data and the functions.
# This file is autogenerated by warewulf
`

// EditOptions are the choices of StartEdit.
type EditOptions struct {
	Parents bool        // make the file's missing directories
	DirMode os.FileMode // the mode of the directories Parents makes
}

// Edit is one file of an overlay being edited: Text is what the editor
// starts with. Nothing is written until Save, so an edit that changes
// nothing, or is abandoned, leaves the overlay (and a shipped one's lack
// of a site copy) as it was.
type Edit struct {
	cfg  *config.Config
	name string
	Rel  string // the file's path in the overlay
	Text []byte
	opt  EditOptions
	mode os.FileMode
}

// StartEdit checks that file can be edited in overlay name and reads it;
// a new file starts empty, a new template with NewTemplateText.
func StartEdit(cfg *config.Config, name, file string, opt EditOptions) (*Edit, error) {
	rel, err := CleanPath(file)
	if err != nil {
		return nil, err
	}
	o, err := Find(cfg, name)
	if err != nil {
		return nil, err
	}
	e := &Edit{cfg: cfg, name: name, Rel: rel, opt: opt, mode: 0o644}
	p, _ := pathIn(o, rel)
	if dir := filepath.Dir(p); !isDir(dir) {
		if !opt.Parents {
			return nil, fmt.Errorf("overlay %s: directory /%s does not exist (--parents makes it)", name, path.Dir(rel))
		}
		if err := creatable(dir); err != nil {
			return nil, fmt.Errorf("overlay %s: %w", name, err)
		}
	}
	st, err := os.Lstat(p)
	switch {
	case err == nil && !st.Mode().IsRegular():
		return nil, fmt.Errorf("overlay %s: %s is not a regular file", name, rel)
	case err == nil:
		if e.Text, err = os.ReadFile(p); err != nil {
			return nil, err
		}
		e.mode = st.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	case strings.HasSuffix(rel, TemplateSuffix):
		e.Text = []byte(NewTemplateText)
	}
	return e, nil
}

// Save writes the edited text into the site overlay (copying a shipped
// one first) and returns the file's path there. An existing file keeps
// its mode; a new one gets 0644.
func (e *Edit) Save(text []byte) (string, error) {
	o, err := SiteCopy(e.cfg, e.name)
	if err != nil {
		return "", err
	}
	p, _ := pathIn(o, e.Rel)
	if dir := filepath.Dir(p); !isDir(dir) {
		if !e.opt.Parents {
			return "", fmt.Errorf("overlay %s: directory /%s does not exist (--parents makes it)", e.name, path.Dir(e.Rel))
		}
		if err := os.MkdirAll(dir, e.opt.DirMode); err != nil {
			return "", err
		}
	}
	return p, safefile.WriteFile(p, text, e.mode)
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
