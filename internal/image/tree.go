package image

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// entry is one file of a rootfs, as lstat saw it.
type entry struct {
	rel   string // path inside the rootfs, no leading "/" ("etc/passwd")
	mode  uint32 // type and permission bits as in stat(2)
	uid   uint32
	gid   uint32
	nlink uint32
	size  int64
	mtime int64
	dev   uint64
	ino   uint64
	rdev  uint64
}

func (e *entry) isDir() bool { return e.mode&unix.S_IFMT == unix.S_IFDIR }
func (e *entry) isReg() bool { return e.mode&unix.S_IFMT == unix.S_IFREG }

// walkTree lists every file under root (root itself excluded) in a
// deterministic order: depth first, each directory's names sorted bytewise,
// a directory before its contents. Alongside it hashes every entry's
// metadata (including ctime, which moves on any change of content, owner or
// mode) into a fingerprint of the tree.
func walkTree(root string) ([]entry, hash.Hash, error) {
	h := sha256.New()
	var out []entry
	var rootDev uint64
	var walk func(dirfd int, rel string) error
	walk = func(dirfd int, rel string) error {
		names, err := readDirNames(dirfd)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(root, rel), err)
		}
		sort.Strings(names)
		var buf [96]byte
		for _, name := range names {
			var st unix.Stat_t
			if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("%s: %w", filepath.Join(root, rel, name), err)
			}
			e := entry{rel: path.Join(rel, name), mode: st.Mode, uid: st.Uid, gid: st.Gid,
				nlink: uint32(st.Nlink), size: st.Size, mtime: st.Mtim.Sec,
				dev: st.Dev, ino: st.Ino, rdev: st.Rdev}
			if !e.isReg() && e.mode&unix.S_IFMT != unix.S_IFLNK {
				e.size = 0
			}
			out = append(out, e)
			h.Write([]byte(e.rel))
			b := buf[:0]
			for _, v := range []uint64{uint64(st.Mode), uint64(st.Uid), uint64(st.Gid), uint64(st.Nlink),
				uint64(st.Size), uint64(st.Mtim.Sec), uint64(st.Mtim.Nsec), uint64(st.Ctim.Sec),
				uint64(st.Ctim.Nsec), st.Ino, st.Rdev} {
				b = binary.LittleEndian.AppendUint64(b, v)
			}
			h.Write(b)
			if e.isDir() {
				fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				if err != nil {
					return fmt.Errorf("%s: %w", filepath.Join(root, e.rel), err)
				}
				if e.dev != rootDev && isVirtualFS(fd) {
					// /proc or /dev left mounted by a manual chroot: its
					// mount point stays, the kernel's files do not.
					logrus.Warnf("%s is a mount of a virtual filesystem: its contents are left out", filepath.Join(root, e.rel))
					unix.Close(fd)
					continue
				}
				err = walk(fd, e.rel)
				unix.Close(fd)
				if err != nil {
					return err
				}
			}
		}
		return nil
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", root, err)
	}
	defer unix.Close(fd)
	var rst unix.Stat_t
	if err := unix.Fstat(fd, &rst); err != nil {
		return nil, nil, err
	}
	rootDev = rst.Dev
	if err := walk(fd, ""); err != nil {
		return nil, nil, err
	}
	return out, h, nil
}

func readDirNames(dirfd int) ([]string, error) {
	// Duplicate the descriptor: os.File takes ownership and closes it.
	nfd, err := unix.Dup(dirfd)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(nfd), "")
	defer f.Close()
	return f.Readdirnames(-1)
}

func fingerprintHex(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// excludes are the glob lines (path.Match syntax) of an image's
// /etc/warewulf/excludes. A pattern with a "/" in it ("/var/cache/apt",
// "usr/share/doc/*") matches the path from the root; one without
// ("*.pyc") matches a name at any depth. A matching directory takes its
// contents with it.
type excludes []pattern

type pattern struct {
	glob     string
	anchored bool
}

func readExcludes(root string) (excludes, error) {
	f, err := os.Open(filepath.Join(root, "etc/warewulf/excludes"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ex excludes
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := strings.Trim(line, "/")
		if p == "" {
			continue
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("/etc/warewulf/excludes: bad pattern %q: %w", line, err)
		}
		ex = append(ex, pattern{glob: p, anchored: strings.Contains(line, "/")})
	}
	return ex, sc.Err()
}

func (ex excludes) match(rel string) bool {
	base := path.Base(rel)
	for _, p := range ex {
		target := rel
		if !p.anchored {
			target = base
		}
		if ok, _ := path.Match(p.glob, target); ok {
			return true
		}
	}
	return false
}

// pruner drops entries that match, and everything below a dropped
// directory, from a list in walk order.
type pruner struct {
	drop   func(rel string) bool
	pruned map[string]bool
}

func (p *pruner) keep(e *entry) bool {
	parent := path.Dir(e.rel)
	if (parent != "." && p.pruned[parent]) || p.drop(e.rel) {
		if e.isDir() {
			if p.pruned == nil {
				p.pruned = map[string]bool{}
			}
			p.pruned[e.rel] = true
		}
		return false
	}
	return true
}

// under reports whether rel is dir or inside it.
func under(rel, dir string) bool {
	return rel == dir || strings.HasPrefix(rel, dir+"/")
}

// isVirtualFS reports whether the directory open at fd is on a kernel
// filesystem (proc, sysfs, devtmpfs, devpts, cgroup, ...).
func isVirtualFS(fd int) bool {
	var st unix.Statfs_t
	if unix.Fstatfs(fd, &st) != nil {
		return false
	}
	switch st.Type {
	case unix.PROC_SUPER_MAGIC, unix.SYSFS_MAGIC, unix.DEVPTS_SUPER_MAGIC, unix.TMPFS_MAGIC,
		unix.CGROUP_SUPER_MAGIC, unix.CGROUP2_SUPER_MAGIC, unix.SECURITYFS_MAGIC, unix.DEBUGFS_MAGIC,
		unix.TRACEFS_MAGIC, unix.BINFMTFS_MAGIC, unix.PSTOREFS_MAGIC, unix.EFIVARFS_MAGIC:
		return true
	}
	return false
}
