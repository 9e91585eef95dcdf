package stage1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/warewulf-ng/warewulf/internal/archive"
)

// Unpack extracts a (gzip, zstd or plain) stream of concatenated newc
// archives into root, as the kernel unpacks an initramfs: later entries
// replace earlier ones, so an overlay unpacked after the image wins. It
// reads r as it arrives: nothing is buffered beyond one file's write.
// It returns the number of entries written.
func Unpack(r io.Reader, root string) (int, error) {
	z, err := archive.Decompressor(r)
	if err != nil {
		return 0, err
	}
	defer z.Close()
	u := unpacker{root: root, links: map[linkKey]string{}}
	cr := archive.NewCpioReader(z)
	n := 0
	for {
		h, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
		if err := u.entry(h, cr); err != nil {
			return n, err
		}
		n++
	}
	// io.EOF from the cpio reader may come before the compressed stream
	// is read to its end; drain it so a digest covers every byte.
	if _, err := io.Copy(io.Discard, z); err != nil {
		return n, err
	}
	return n, nil
}

type linkKey struct {
	archive int
	ino     uint64
}

type unpacker struct {
	root  string
	links map[linkKey]string // first path of each hard-linked inode
	buf   []byte
}

// cleanPath maps an archive name into root, refusing names that leave it.
func cleanPath(root, name string) (string, bool) {
	name = strings.TrimPrefix(name, "./")
	name = strings.TrimLeft(name, "/")
	if name == "" || name == "." {
		return "", false
	}
	c := filepath.Clean("/" + name)
	if c == "/" {
		return "", false
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", false
		}
	}
	return filepath.Join(root, c), true
}

func (u *unpacker) entry(h *archive.Header, body io.Reader) error {
	dst, ok := cleanPath(u.root, h.Name)
	if !ok {
		if strings.Trim(h.Name, "./") == "" {
			return nil // the archive's "." entry
		}
		return fmt.Errorf("unpack: bad path %q", h.Name)
	}
	perm := h.Mode & 0o7777
	switch h.Mode & archive.TypeMask {
	case archive.TypeDir:
		if fi, err := os.Lstat(dst); err == nil && !fi.IsDir() {
			os.Remove(dst)
		}
		if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
		}
		return attrs(dst, h, perm)
	case archive.TypeReg:
		return u.file(dst, h, body, perm)
	case archive.TypeLink:
		target, err := io.ReadAll(io.LimitReader(body, 4096))
		if err != nil {
			return fmt.Errorf("unpack: %s: %w", h.Name, err)
		}
		replace(dst)
		if err := os.Symlink(string(target), dst); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
		unix.Lchown(dst, int(h.UID), int(h.GID))
		return nil
	case archive.TypeChar, archive.TypeBlock, archive.TypeFifo, archive.TypeSock:
		replace(dst)
		dev := unix.Mkdev(h.RdevMajor, h.RdevMinor)
		if err := unix.Mknod(dst, h.Mode, int(dev)); err != nil {
			return fmt.Errorf("unpack: mknod %s: %w", dst, err)
		}
		return attrs(dst, h, perm)
	}
	return fmt.Errorf("unpack: %s: unknown file type %#o", h.Name, h.Mode&archive.TypeMask)
}

// replace removes what is at dst unless it is a directory (which an entry
// of another type must not silently empty: that fails at create).
func replace(dst string) {
	if fi, err := os.Lstat(dst); err == nil && !fi.IsDir() {
		os.Remove(dst)
	} else if errors.Is(err, os.ErrNotExist) {
		os.MkdirAll(filepath.Dir(dst), 0o755)
	}
}

func (u *unpacker) file(dst string, h *archive.Header, body io.Reader, perm uint32) error {
	key := linkKey{0, h.Inode}
	if h.Nlink > 1 {
		if cr, ok := body.(*archive.CpioReader); ok {
			key.archive = cr.Archives
		}
		if first, ok := u.links[key]; ok && first != dst {
			replace(dst)
			if err := os.Link(first, dst); err != nil {
				return fmt.Errorf("unpack: link %s: %w", dst, err)
			}
			if h.Size == 0 {
				return nil
			}
			// newc puts the data on the last name of the group.
		} else {
			u.links[key] = dst
		}
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		replace(dst)
		f, err = os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
	}
	if h.Size > 0 {
		if u.buf == nil {
			u.buf = make([]byte, 1<<20)
		}
		n, err := io.CopyBuffer(onlyWriter{f}, io.LimitReader(body, h.Size), u.buf)
		if err == nil && n != h.Size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("unpack: %s: %w", h.Name, err)
		}
	}
	fd := int(f.Fd())
	unix.Fchown(fd, int(h.UID), int(h.GID))
	unix.Fchmod(fd, perm) // after chown, which clears setuid
	t := unix.NsecToTimespec(h.Mtime * 1e9)
	unix.UtimesNanoAt(unix.AT_FDCWD, dst, []unix.Timespec{t, t}, unix.AT_SYMLINK_NOFOLLOW)
	return f.Close()
}

// onlyWriter hides os.File's ReadFrom, whose splice attempt on a
// decompressor's stream only costs a failed system call per file.
type onlyWriter struct{ io.Writer }

func attrs(dst string, h *archive.Header, perm uint32) error {
	unix.Lchown(dst, int(h.UID), int(h.GID))
	if err := unix.Chmod(dst, perm); err != nil {
		return fmt.Errorf("unpack: chmod %s: %w", dst, err)
	}
	return nil
}

// Stats describe one fetch-and-unpack.
type Stats struct {
	Bytes          int64 // compressed bytes downloaded (as the server sent them)
	Entries        int
	Resumes, Waits int
	Verified       bool // the server's digest matched
}

// Fetch downloads url and unpacks it into root while it arrives. A file
// that changed on the server midway is fetched again from the start,
// over what was unpacked (the new version's entries replace the old).
func Fetch(ctx context.Context, client *http.Client, url, root string, logf func(string, ...any)) (Stats, error) {
	var st Stats
	for attempt := 1; ; attempt++ {
		d := NewDownload(ctx, client, url)
		if logf != nil {
			d.Logf = logf
			d.Progress = func(off, size int64) {
				if size >= 64<<20 { // only big files: a line per tenth
					logf("%s: %d%% (%d of %d MB)", url, off*100/size, off>>20, size>>20)
				}
			}
		}
		n, err := Unpack(d, root)
		d.Close()
		st.Entries, st.Bytes = n, d.Offset()
		st.Resumes += d.Resumes
		st.Waits += d.Waits
		st.Verified = d.Verified()
		if (errors.Is(err, ErrChanged) || errors.Is(err, ErrDigest)) && attempt < 5 {
			if logf != nil {
				logf("%s: %v; starting over", url, err)
			}
			continue
		}
		return st, err
	}
}
