package wwclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// MaxOverlaySize bounds what one fetch may unpack to, so a broken or hostile
// response cannot fill the node's memory.
const MaxOverlaySize = 256 << 20

// Entry is one file of an overlay, read completely before anything is
// written so that a truncated or corrupt download changes nothing.
type Entry struct {
	Name     string // relative, cleaned, never escaping the root
	Mode     uint32 // type and permission bits as in stat(2)
	UID, GID int
	Mtime    time.Time
	Link     string // symlink target
	Data     []byte
	inode    int64
	nlink    int
}

// Type bits, as in stat(2).
const (
	typeMask = 0o170000
	typeReg  = 0o100000
	typeDir  = 0o040000
	typeLink = 0o120000
)

// Decode reads a runtime overlay: concatenated newc cpio archives, each
// possibly gzip or zstd compressed (the server may send a shared part and a
// per-node part back to back). Later entries of the same name win.
func Decode(r io.Reader) ([]Entry, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var all []Entry
	var total int64
	for {
		if err := skipZeros(br); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		magic, err := br.Peek(4)
		if err != nil {
			return nil, fmt.Errorf("overlay: short read: %w", err)
		}
		var member io.Reader = br
		var closer func()
		switch {
		case magic[0] == 0x1f && magic[1] == 0x8b:
			zr, err := gzip.NewReader(br)
			if err != nil {
				return nil, fmt.Errorf("overlay: gzip: %w", err)
			}
			// One member at a time; the loop picks up whatever follows.
			zr.Multistream(false)
			member = zr
		case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
			if err != nil {
				return nil, fmt.Errorf("overlay: zstd: %w", err)
			}
			member, closer = zr, zr.Close
		}
		entries, n, err := readArchives(member, MaxOverlaySize-total)
		if err == nil && member != io.Reader(br) {
			// Drain the compressed member so its checksum is verified.
			if _, err = io.Copy(io.Discard, member); err != nil {
				err = fmt.Errorf("overlay: %w", err)
			}
		}
		if closer != nil {
			closer()
		}
		if err != nil {
			return nil, err
		}
		total += n
		all = append(all, entries...)
		if member == io.Reader(br) {
			// An uncompressed stream was read to its end by readArchives.
			break
		}
	}
	return linkHardlinks(all), nil
}

// skipZeros discards the NUL padding that may follow a cpio trailer.
func skipZeros(br *bufio.Reader) error {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return err
		}
		if b != 0 {
			return br.UnreadByte()
		}
	}
}

// readArchives reads cpio archives from r until r ends, allowing NUL padding
// between them.
func readArchives(r io.Reader, budget int64) ([]Entry, int64, error) {
	br := bufio.NewReader(r)
	var out []Entry
	var total int64
	for {
		if err := skipZeros(br); err == io.EOF {
			return out, total, nil
		} else if err != nil {
			return nil, 0, fmt.Errorf("overlay: %w", err)
		}
		cr := cpio.NewReader(br)
		for {
			h, err := cr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, 0, fmt.Errorf("overlay: cpio: %w", err)
			}
			name, ok := cleanName(h.Name)
			if !ok {
				return nil, 0, fmt.Errorf("overlay: cpio: bad path %q", h.Name)
			}
			if name == "" {
				continue // the archive's "." entry
			}
			e := Entry{Name: name, Mode: uint32(h.Mode), UID: h.Uid, GID: h.Guid,
				Mtime: h.ModTime, Link: h.Linkname, inode: h.Inode, nlink: h.Links}
			switch e.Mode & typeMask {
			case typeReg:
				total += h.Size
				if total > budget {
					return nil, 0, fmt.Errorf("overlay: larger than %d bytes", MaxOverlaySize)
				}
				e.Data = make([]byte, h.Size)
				if _, err := io.ReadFull(cr, e.Data); err != nil {
					return nil, 0, fmt.Errorf("overlay: cpio: %s: %w", name, err)
				}
			case typeDir, typeLink:
			default:
				// Device nodes, FIFOs and sockets have no place in a
				// runtime overlay.
				continue
			}
			out = append(out, e)
		}
	}
}

// linkHardlinks gives every member of a newc hard-link group (same inode,
// nlink > 1, data only on the last) the group's data.
func linkHardlinks(es []Entry) []Entry {
	data := map[int64][]byte{}
	for _, e := range es {
		if e.nlink > 1 && e.Mode&typeMask == typeReg && len(e.Data) > 0 {
			data[e.inode] = e.Data
		}
	}
	for i := range es {
		e := &es[i]
		if e.nlink > 1 && e.Mode&typeMask == typeReg && len(e.Data) == 0 {
			e.Data = data[e.inode]
		}
	}
	return es
}

// cleanName makes an archive path relative to the root; ok is false for a
// path that would leave it.
func cleanName(name string) (string, bool) {
	n := path.Clean("/" + name)
	if strings.Contains(name, "\x00") {
		return "", false
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", false
		}
	}
	return strings.TrimPrefix(n, "/"), true
}

// Apply writes entries under root. Each file and symlink is written beside
// its target and renamed over it, so a reader sees the old or the new file,
// never half of one. Directories are made as needed; modes, owners and
// modification times are set as the archive says. Files and links that
// already match are left alone. Apply returns the names it changed.
func Apply(root string, entries []Entry) ([]string, error) {
	// Directories first (parents before children), then everything else.
	sorted := append([]Entry(nil), entries...)
	sort.SliceStable(sorted, func(i, j int) bool {
		di, dj := sorted[i].Mode&typeMask == typeDir, sorted[j].Mode&typeMask == typeDir
		if di != dj {
			return di
		}
		if di {
			return strings.Count(sorted[i].Name, "/") < strings.Count(sorted[j].Name, "/")
		}
		return false
	})
	var errs []error
	var changed []string
	for _, e := range sorted {
		c, err := applyOne(root, e)
		if err != nil {
			errs = append(errs, err)
		}
		if c {
			changed = append(changed, "/"+e.Name)
		}
	}
	return changed, errors.Join(errs...)
}

// unchanged tells whether dst already is what e describes.
func unchanged(dst string, e Entry) bool {
	st, err := os.Lstat(dst)
	if err != nil {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || sys.Mode != e.Mode || int(sys.Uid) != e.UID || int(sys.Gid) != e.GID {
		return false
	}
	switch e.Mode & typeMask {
	case typeLink:
		t, err := os.Readlink(dst)
		return err == nil && t == e.Link
	case typeReg:
		if st.Size() != int64(len(e.Data)) {
			return false
		}
		cur, err := os.ReadFile(dst)
		return err == nil && bytes.Equal(cur, e.Data)
	}
	return true
}

func applyOne(root string, e Entry) (bool, error) {
	dst := filepath.Join(root, filepath.FromSlash(e.Name))
	perm := e.Mode & 0o7777
	if unchanged(dst, e) {
		return false, nil
	}
	switch e.Mode & typeMask {
	case typeDir:
		if st, err := os.Lstat(dst); err == nil && !st.IsDir() {
			if err := os.Remove(dst); err != nil {
				return false, err
			}
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return false, err
		}
		return true, setAttrs(dst, e, perm)
	case typeReg, typeLink:
		dir := filepath.Dir(dst)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, err
		}
		tmp, err := tempName(dir, filepath.Base(dst))
		if err != nil {
			return false, err
		}
		if e.Mode&typeMask == typeLink {
			err = os.Symlink(e.Link, tmp)
		} else {
			err = writeFile(tmp, e.Data)
		}
		if err == nil {
			err = setAttrs(tmp, e, perm)
		}
		if err == nil {
			if st, serr := os.Lstat(dst); serr == nil && st.IsDir() {
				err = fmt.Errorf("%s: a directory is in the way", dst)
			}
		}
		if err == nil {
			err = os.Rename(tmp, dst)
		}
		if err != nil {
			os.Remove(tmp)
			return false, err
		}
		return true, nil
	}
	return false, nil
}

func writeFile(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// setAttrs sets owner, then mode (chown clears setuid bits), then mtime.
func setAttrs(p string, e Entry, perm uint32) error {
	if err := os.Lchown(p, e.UID, e.GID); err != nil && !(errors.Is(err, syscall.EPERM) && os.Geteuid() != 0) {
		return err
	}
	if e.Mode&typeMask == typeLink {
		return nil // symlinks have no mode of their own on Linux
	}
	if err := syscall.Chmod(p, perm); err != nil {
		return &os.PathError{Op: "chmod", Path: p, Err: err}
	}
	if !e.Mtime.IsZero() {
		return os.Chtimes(p, e.Mtime, e.Mtime)
	}
	return nil
}

func tempName(dir, base string) (string, error) {
	for i := 0; i < 100; i++ {
		n := filepath.Join(dir, fmt.Sprintf(".%s.wwclient-%d-%d", base, os.Getpid(), time.Now().UnixNano()%1e9+int64(i)))
		if _, err := os.Lstat(n); os.IsNotExist(err) {
			return n, nil
		}
	}
	return "", fmt.Errorf("%s: no free temporary name", dir)
}
