package overlay

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// TemplateSuffix marks a file rendered per node; the output drops it.
const TemplateSuffix = ".ww"

// AttributesFile, beside an overlay's rootfs/, sets the mode and owner of
// entries ("PATH MODE UID:GID", "-" keeps the default). Owners are never
// taken from disk: a checkout belongs to whoever cloned it, and a node's
// files must belong to root unless the overlay says otherwise.
const AttributesFile = "attributes"

// Overlay is one named overlay: a directory holding rootfs/ (the files) and
// optional metadata beside it.
type Overlay struct {
	Name string
	Dir  string // the overlay's directory; its files are under Dir/rootfs
	Site bool   // a site overlay (possibly shadowing a shipped one)
	// Shadows is set when a site overlay hides a shipped one of the same name.
	Shadows bool
}

// Rootfs is where the overlay's files live.
func (o *Overlay) Rootfs() string {
	// As upstream: an overlay without rootfs/ keeps its files at its top.
	if r := filepath.Join(o.Dir, "rootfs"); isDir(r) || !isDir(o.Dir) {
		return r
	}
	return o.Dir
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// ValidName checks an overlay name: letters, digits, '.', '_', '+', '-'.
func ValidName(name string) error {
	if !nameRE.MatchString(name) || strings.Contains(name, "..") || len(name) > 128 {
		return fmt.Errorf("%q is not a valid overlay name (letters, digits, '.', '_', '+', '-')", name)
	}
	return nil
}

// Find returns the overlay called name: the site copy if there is one, else
// the shipped one.
// Aliases are other names of shipped overlays: upstream's old names and
// this project's own earlier ones. An overlay of that name, site or
// shipped, comes first.
var Aliases = map[string]string{
	"debian.interfaces": "ifupdown",
	"networkd":          "systemd.networkd",
}

func Find(cfg *config.Config, name string) (*Overlay, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	site := filepath.Join(cfg.SiteOverlayDir(), name)
	dist := filepath.Join(cfg.DistOverlayDir(), name)
	distOK := isDir(dist)
	if isDir(site) {
		return &Overlay{Name: name, Dir: site, Site: true, Shadows: distOK}, nil
	}
	if distOK {
		return &Overlay{Name: name, Dir: dist}, nil
	}
	if target, ok := Aliases[name]; ok {
		return Find(cfg, target)
	}
	return nil, fmt.Errorf("overlay %q does not exist (looked in %s and %s)", name, cfg.SiteOverlayDir(), cfg.DistOverlayDir())
}

// List returns every overlay, site and shipped, sorted by name; a site
// overlay hides the shipped one it shadows.
func List(cfg *config.Config) ([]*Overlay, error) {
	seen := map[string]bool{}
	var out []*Overlay
	for _, dir := range []string{cfg.SiteOverlayDir(), cfg.DistOverlayDir()} {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.IsDir() || seen[e.Name()] || ValidName(e.Name()) != nil {
				continue
			}
			seen[e.Name()] = true
			o, err := Find(cfg, e.Name())
			if err != nil {
				return nil, err
			}
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// CleanPath checks a path inside an overlay (as given on the command line
// or by a template) and returns it relative, without "." or "..".
func CleanPath(p string) (string, error) {
	c := path.Clean("/" + p)
	if p == "" || c == "/" || strings.Contains(p, "\x00") {
		return "", fmt.Errorf("%q is not a file path inside an overlay", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("%q leaves the overlay", p)
		}
	}
	return c[1:], nil
}

// Attr is an entry's mode and owner as set in the attributes file. A
// negative field means "not set".
type Attr struct {
	Mode     int64
	UID, GID int64
}

// Attributes is the parsed attributes file of an overlay, keyed by path.
type Attributes map[string]Attr

// ReadAttributes loads NAME/attributes; a missing file is empty.
func ReadAttributes(o *Overlay) (Attributes, error) {
	file := filepath.Join(o.Dir, AttributesFile)
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return Attributes{}, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseAttributes(file, data)
}

// ParseAttributes decodes the attributes format; file names errors.
func ParseAttributes(file string, data []byte) (Attributes, error) {
	out := Attributes{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 3 {
			return nil, fmt.Errorf("%s:%d: want \"PATH MODE UID:GID\", got %q", file, line, text)
		}
		p, err := CleanPath(f[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, line, err)
		}
		a := Attr{Mode: -1, UID: -1, GID: -1}
		if f[1] != "-" {
			m, err := strconv.ParseUint(f[1], 8, 32)
			if err != nil || m > 0o7777 {
				return nil, fmt.Errorf("%s:%d: mode %q is not an octal mode", file, line, f[1])
			}
			a.Mode = int64(m)
		}
		if f[2] != "-" {
			u, g, ok := strings.Cut(f[2], ":")
			uid, err1 := strconv.ParseUint(u, 10, 32)
			gid, err2 := strconv.ParseUint(g, 10, 32)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%s:%d: owner %q is not UID:GID", file, line, f[2])
			}
			a.UID, a.GID = int64(uid), int64(gid)
		}
		out[p] = a
	}
	return out, sc.Err()
}

// Marshal renders the attributes file, sorted by path.
func (a Attributes) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("# PATH MODE UID:GID (\"-\": mode from disk, owner root)\n")
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := a[k]
		mode, owner := "-", "-"
		if v.Mode >= 0 {
			mode = fmt.Sprintf("%04o", v.Mode)
		}
		if v.UID >= 0 {
			owner = fmt.Sprintf("%d:%d", v.UID, v.GID)
		}
		fmt.Fprintf(&b, "%s %s %s\n", k, mode, owner)
	}
	return b.Bytes()
}

// Write replaces o's attributes file.
func (a Attributes) Write(o *Overlay) error {
	return safefile.WriteFile(filepath.Join(o.Dir, AttributesFile), a.Marshal(), 0o644)
}

// Entry is one file, directory or symlink of an overlay.
type Entry struct {
	Path     string // relative to rootfs, "/"-separated
	Type     uint32 // archive.TypeReg, TypeDir or TypeLink
	Mode     uint32 // permission bits as they go into the archive
	UID, GID uint32
	Size     int64
	Mtime    int64 // nanoseconds, for the cache key only
	Ino      uint64
	Target   string // symlink target
	Template bool   // a .ww file
}

// Scan lists an overlay's entries in path order with the modes and owners
// they get in an archive: modes from disk without group and other write
// (a checkout's umask must not make /etc group-writable on every node),
// owner root, both overridden by the attributes file.
func Scan(o *Overlay) ([]Entry, error) {
	attrs, err := ReadAttributes(o)
	if err != nil {
		return nil, err
	}
	root := o.Rootfs()
	var out []Entry
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if p == root {
			return nil
		}
		rel := filepath.ToSlash(p[len(root)+1:])
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := Entry{Path: rel, Mode: uint32(info.Mode().Perm()) &^ 0o022, Mtime: info.ModTime().UnixNano()}
		if info.Mode()&fs.ModeSetuid != 0 {
			e.Mode |= 0o4000
		}
		if info.Mode()&fs.ModeSetgid != 0 {
			e.Mode |= 0o2000
		}
		if info.Mode()&fs.ModeSticky != 0 {
			e.Mode |= 0o1000
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			e.Ino = st.Ino
		}
		switch {
		case d.IsDir():
			e.Type = 0o040000
		case info.Mode()&fs.ModeSymlink != 0:
			e.Type = 0o120000
			e.Mode = 0o777
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
			e.Size = int64(len(e.Target))
		case info.Mode().IsRegular():
			e.Type = 0o100000
			e.Size = info.Size()
			e.Template = strings.HasSuffix(rel, TemplateSuffix)
		default:
			return fmt.Errorf("overlay %s: %s: only files, directories and symlinks can be in an overlay", o.Name, rel)
		}
		if a, ok := attrs[rel]; ok {
			if a.Mode >= 0 {
				e.Mode = uint32(a.Mode)
			}
			if a.UID >= 0 {
				e.UID, e.GID = uint32(a.UID), uint32(a.GID)
			}
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("overlay %s: %w", o.Name, err)
	}
	return out, nil
}

// signature hashes what a build of this overlay depends on: every entry's
// path, mode, owner, size, mtime and inode, as make does (a rewritten file
// gets a new mtime or inode).
func signature(name string, entries []Entry) string {
	h := sha256.New()
	fmt.Fprintf(h, "overlay %s\n", name)
	for _, e := range entries {
		fmt.Fprintf(h, "%s %o %o %d:%d %d %d %d %s\n", e.Path, e.Type, e.Mode, e.UID, e.GID, e.Size, e.Mtime, e.Ino, e.Target)
	}
	return hex.EncodeToString(h.Sum(nil))
}
