package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/warewulf-ng/warewulf/internal/archive"
	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// buildFormat changes whenever the archive layout changes, so images built
// by an older wwctl are rebuilt.
const buildFormat = "1"

// BuildInfo is the record of a built image (build.json in its provision
// directory). File names are relative to that directory.
type BuildInfo struct {
	Fingerprint string              `json:"fingerprint"`
	Compression archive.Compression `json:"compression"`
	Image       string              `json:"image"`
	ImageSize   int64               `json:"image_size"`
	RawSize     int64               `json:"raw_size,omitempty"` // uncompressed, upstream's NAME.img size (its API's size); 0: not recorded
	Files       int                 `json:"files"`
	Kernels     []BuiltKernel       `json:"kernels"` // newest first: DefaultKernel says which a node boots
	Built       time.Time           `json:"built"`
}

// BuiltKernel is one kernel extracted from the image and its modules archive.
type BuiltKernel struct {
	Version string `json:"version"`
	Kernel  string `json:"kernel"`
	Kmods   string `json:"kmods"`
}

// DefaultKernel is the built kernel a node that names none boots (see
// image.DefaultKernel); ok is false if there is none.
func (bi *BuildInfo) DefaultKernel() (k BuiltKernel, ok bool) {
	return bi.ChooseKernel("")
}

// ChooseKernel is the built kernel a node whose `kernel version` is want
// boots (see image.ChooseKernel).
func (bi *BuildInfo) ChooseKernel(want string) (BuiltKernel, bool) {
	i := pickKernel(len(bi.Kernels), func(i int) string { return bi.Kernels[i].Version }, want)
	if i < 0 {
		return BuiltKernel{}, false
	}
	return bi.Kernels[i], true
}

// BuildOptions tune Build.
type BuildOptions struct {
	Force       bool                // rebuild even if the rootfs did not change
	Compression archive.Compression // None: warewulf.conf's `image compression`
}

// BuildResult says what Build did.
type BuildResult struct {
	Info    *BuildInfo
	Rebuilt bool // false: the rootfs had not changed, nothing was written
}

const buildInfoFile = "build.json"

func provisionFile(cfg *config.Config, name, file string) string {
	return filepath.Join(cfg.ImageProvisionDir(name), file)
}

// ReadBuildInfo returns the record of the last build of image name. The
// daemon asks on every download, so the parsed record is cached until
// build.json is replaced.
func ReadBuildInfo(cfg *config.Config, name string) (*BuildInfo, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	path := provisionFile(cfg, name, buildInfoFile)
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("image %q has not been built (run: wwctl image build %s)", name, name)
	}
	if err != nil {
		return nil, err
	}
	key := infoKey{ino: st.Sys().(*syscall.Stat_t).Ino, size: st.Size(), mtime: st.ModTime()}
	infoCache.Lock()
	c, ok := infoCache.m[path]
	infoCache.Unlock()
	if ok && c.key == key {
		cp := *c.info
		return &cp, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	bi := &BuildInfo{}
	if err := json.Unmarshal(data, bi); err != nil {
		return nil, fmt.Errorf("image %s: %s: %w", name, buildInfoFile, err)
	}
	infoCache.Lock()
	infoCache.m[path] = cachedInfo{key: key, info: bi}
	infoCache.Unlock()
	cp := *bi
	return &cp, nil
}

// build.json is replaced by rename, so a new file has a new inode.
type infoKey struct {
	ino   uint64
	size  int64
	mtime time.Time
}

type cachedInfo struct {
	key  infoKey
	info *BuildInfo
}

var infoCache = struct {
	sync.Mutex
	m map[string]cachedInfo
}{m: map[string]cachedInfo{}}

func compressionFor(cfg *config.Config, c archive.Compression) (archive.Compression, error) {
	if c != archive.None {
		return c, nil
	}
	return archive.ParseCompression(cfg.Warewulf.ImageCompression)
}

// plan is what a build of one rootfs writes, worked out from one walk.
type plan struct {
	rootfs      string
	fingerprint string
	image       []entry
	kernels     []Kernel
	kmods       map[string][]entry // by kernel version
}

func makePlan(rootfs string, comp archive.Compression) (*plan, error) {
	entries, h, err := walkTree(rootfs)
	if err != nil {
		return nil, err
	}
	ex, err := readExcludes(rootfs)
	if err != nil {
		return nil, err
	}
	kernels, err := FindKernels(rootfs)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(h, "\x00format=%s compression=%s", buildFormat, comp)
	p := &plan{rootfs: rootfs, fingerprint: fingerprintHex(h), kernels: kernels, kmods: map[string][]entry{}}

	// The modules of each kernel found, and the firmware, go in the kmods
	// archives, served beside the kernel they belong to; /boot is served as
	// the kernel itself. The image keeps everything else.
	firmware := ""
	if len(kernels) > 0 {
		firmware = resolveRel(rootfs, "lib/firmware")
	}
	var moved []string
	for _, k := range kernels {
		if k.Modules != "" {
			moved = append(moved, k.Modules)
		}
	}
	if firmware != "" {
		moved = append(moved, firmware)
	}
	img := pruner{drop: func(rel string) bool {
		if rel == "boot" || ex.match(rel) {
			return true
		}
		for _, m := range moved {
			if rel == m {
				return true
			}
		}
		return false
	}}
	for i := range entries {
		if img.keep(&entries[i]) {
			p.image = append(p.image, entries[i])
		}
	}
	for _, k := range kernels {
		var dirs []string
		if k.Modules != "" {
			dirs = append(dirs, k.Modules)
		}
		if firmware != "" {
			dirs = append(dirs, firmware)
		}
		kernelCopy := k.Modules + "/vmlinuz" // served as the kernel already
		km := pruner{drop: func(rel string) bool {
			if ex.match(rel) || rel == kernelCopy {
				return true
			}
			for _, d := range dirs {
				if under(rel, d) || strings.HasPrefix(d, rel+"/") {
					return false
				}
			}
			return true
		}}
		list := []entry{}
		for i := range entries {
			if km.keep(&entries[i]) {
				list = append(list, entries[i])
			}
		}
		p.kmods[k.Version] = list
	}
	return p, nil
}

// Build builds image name into its provision directory: the rootfs as a
// compressed newc cpio archive (minus /boot, the kernels' modules, the
// firmware and the image's /etc/warewulf/excludes), each kernel, and per
// kernel a kmods archive of its modules and the firmware. It does nothing
// when the rootfs did not change since the last build, unless Force. Every
// file is written to a temporary name and renamed into place, so an
// interrupted build leaves the previous build servable.
func Build(ctx context.Context, cfg *config.Config, name string, o BuildOptions) (*BuildResult, error) {
	// Shared with exec and other builds; a delete, rename or import of the
	// image meanwhile is refused (and a build during one of those is).
	ilock, err := lockExisting(cfg, name, false)
	if err != nil {
		return nil, err
	}
	defer ilock.unlock()
	comp, err := compressionFor(cfg, o.Compression)
	if err != nil {
		return nil, err
	}
	dir := cfg.ImageProvisionDir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Builds of one image take turns.
	lock := flock.New(filepath.Join(dir, ".build.lock"))
	if err := lock.Lock(); err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	defer lock.Unlock()
	removeTemps(dir)

	p, err := makePlan(cfg.ImageRootfs(name), comp)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	if old, err := ReadBuildInfo(cfg, name); err == nil && !o.Force && old.Fingerprint == p.fingerprint && old.complete(dir) {
		logrus.Infof("image %s: unchanged, not rebuilt", name)
		return &BuildResult{Info: old}, nil
	}

	start := time.Now()
	bi := &BuildInfo{Fingerprint: p.fingerprint, Compression: comp,
		Image: "image.img", Files: len(p.image)}
	// The archives are written side by side: one compressed stream rarely
	// keeps every core busy (zstd's stream encoder uses about one), and the
	// kmods archive is often as big as the image.
	var (
		mu      sync.Mutex
		pending []*safefile.File
		wg      sync.WaitGroup
		errs    = make([]error, 1+len(p.kernels))
	)
	defer func() {
		for _, f := range pending {
			f.Abort()
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	write := func(file string, fill func(io.Writer) error) (int64, error) {
		f, err := safefile.Create(filepath.Join(dir, file), 0o644)
		if err != nil {
			return 0, err
		}
		mu.Lock()
		pending = append(pending, f)
		mu.Unlock()
		if err := fill(f); err != nil {
			cancel()
			return 0, fmt.Errorf("image %s: %s: %w", name, file, err)
		}
		return f.Seek(0, io.SeekCurrent)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		bi.ImageSize, errs[0] = write(bi.Image, func(w io.Writer) (err error) {
			bi.RawSize, err = writeArchive(ctx, p.rootfs, p.image, w, comp)
			return err
		})
	}()
	for i, k := range p.kernels {
		bk := BuiltKernel{Version: k.Version, Kernel: "kernel-" + k.Version,
			Kmods: "kmods-" + k.Version + ".img"}
		bi.Kernels = append(bi.Kernels, bk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, errs[i+1] = write(bk.Kernel, func(w io.Writer) error { return copyFile(w, k.Path) }); errs[i+1] != nil {
				return
			}
			_, errs[i+1] = write(bk.Kmods, func(w io.Writer) error {
				_, err := writeArchive(ctx, p.rootfs, p.kmods[k.Version], w, comp)
				return err
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, f := range pending {
		if err := f.Commit(); err != nil {
			return nil, err
		}
	}
	bi.Built = time.Now().UTC().Truncate(time.Second)
	data, err := json.MarshalIndent(bi, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := safefile.WriteFile(filepath.Join(dir, buildInfoFile), append(data, '\n'), 0o644); err != nil {
		return nil, err
	}
	bi.removeOthers(dir)
	logrus.Infof("image %s: built %s (%d files, %d bytes, %d kernel(s)) in %s", name, bi.Image, bi.Files,
		bi.ImageSize, len(bi.Kernels), time.Since(start).Round(time.Millisecond))
	return &BuildResult{Info: bi, Rebuilt: true}, nil
}

// Stale reports whether `wwctl image build NAME` would rebuild: never
// built, its rootfs changed since, or warewulf.conf now asks for another
// compression.
func Stale(cfg *config.Config, name string) (bool, error) {
	bi, err := ReadBuildInfo(cfg, name)
	if err != nil {
		return true, nil
	}
	comp, err := compressionFor(cfg, archive.None)
	if err != nil {
		return true, err
	}
	p, err := makePlan(cfg.ImageRootfs(name), comp)
	if err != nil {
		return true, err
	}
	return p.fingerprint != bi.Fingerprint || !bi.complete(cfg.ImageProvisionDir(name)), nil
}

func (bi *BuildInfo) files() []string {
	files := []string{buildInfoFile, bi.Image}
	for _, k := range bi.Kernels {
		files = append(files, k.Kernel, k.Kmods)
	}
	return files
}

func (bi *BuildInfo) complete(dir string) bool {
	for _, f := range bi.files() {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// removeOthers removes files of earlier builds (another compression, a
// kernel that left the image). A daemon still sending one keeps its open
// file.
func (bi *BuildInfo) removeOthers(dir string) {
	keep := map[string]bool{".build.lock": true}
	for _, f := range bi.files() {
		keep[f] = true
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !keep[e.Name()] && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// removeTemps removes temporaries of a build that was killed (the caller
// holds the build lock, so none is in use).
func removeTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), ".tmp-") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func copyFile(w io.Writer, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// writeArchive writes the entries of rootfs as a compressed newc archive.
//
// Inode numbers are assigned in order, so the archive depends only on the
// tree. Hard links share an inode number and carry the data on their last
// entry (earlier ones are empty), the layout GNU cpio writes and both GNU
// cpio and the kernel's initramfs unpacker read; the link count is the
// number of links inside this archive.
func writeArchive(ctx context.Context, rootfs string, list []entry, out io.Writer, comp archive.Compression) (int64, error) {
	type inode struct {
		dev, ino uint64
	}
	type group struct {
		count, last int
		number      uint64
	}
	groups := map[inode]*group{}
	for i := range list {
		e := &list[i]
		if e.isReg() && e.nlink > 1 {
			k := inode{e.dev, e.ino}
			g := groups[k]
			if g == nil {
				g = &group{}
				groups[k] = g
			}
			g.count++
			g.last = i
		}
	}
	w, err := archive.NewWriter(out, comp)
	if err != nil {
		return 0, err
	}
	// Padded to 512-byte blocks, as GNU cpio writes upstream's images.
	w.Block = 512
	rootfd, err := unix.Open(rootfs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(rootfd)
	var next uint64 = 1
	linkBuf := make([]byte, unix.PathMax)
	for i := range list {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		e := &list[i]
		h := archive.Header{Name: e.rel, Mode: e.mode, UID: e.uid, GID: e.gid, Nlink: 1,
			Mtime: e.mtime, Size: e.size, RdevMajor: unix.Major(e.rdev), RdevMinor: unix.Minor(e.rdev)}
		if e.isDir() {
			h.Nlink = 2
		}
		h.Inode = next
		if g := groups[inode{e.dev, e.ino}]; g != nil && e.isReg() && e.nlink > 1 {
			if g.number == 0 {
				g.number = next
			} else {
				h.Inode = g.number
				next--
			}
			h.Nlink = uint32(g.count)
			if i != g.last {
				h.Size = 0
			}
		}
		next++
		switch e.mode & unix.S_IFMT {
		case unix.S_IFLNK:
			n, err := unix.Readlinkat(rootfd, e.rel, linkBuf)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", path.Join(rootfs, e.rel), err)
			}
			if err := w.WriteFile(&h, linkBuf[:n]); err != nil {
				return 0, err
			}
		case unix.S_IFREG:
			if err := w.WriteHeader(&h); err != nil {
				return 0, err
			}
			if h.Size > 0 {
				if err := copyBody(ctx, w, rootfd, e.rel, h.Size); err != nil {
					return 0, fmt.Errorf("%s: %w", path.Join(rootfs, e.rel), err)
				}
			}
		default:
			h.Size = 0
			if err := w.WriteHeader(&h); err != nil {
				return 0, err
			}
		}
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return w.Size(), nil
}

// copyBody copies size bytes of a file into the archive with a bare
// open/read/close: no fstat, no poller registration, no atime update.
func copyBody(ctx context.Context, w *archive.Writer, rootfd int, rel string, size int64) error {
	fd, err := unix.Openat(rootfd, rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = unix.Openat(rootfd, rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var r io.Reader = fdReader(fd)
	if size > 1<<20 { // big files: stop mid-file when cancelled
		r = ctxReader{ctx, r}
	}
	src := &readSide{r: r}
	n, err := w.ReadFrom(src)
	switch {
	case err == nil:
		return nil
	case src.ended && n < size:
		return fmt.Errorf("changed during the build (read %d of %d bytes)", n, size)
	case src.err != nil && !errors.Is(src.err, context.Canceled):
		return fmt.Errorf("reading it: %w", src.err)
	}
	return err // writing the image (a full disk), or cancelled
}

// readSide remembers how reading a file ended, so that an error writing
// the image (a full disk) is not blamed on the file.
type readSide struct {
	r     io.Reader
	ended bool
	err   error
}

func (s *readSide) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.ended = true
	} else if err != nil {
		s.err = err
	}
	return n, err
}

type fdReader int

func (f fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(f), p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}
