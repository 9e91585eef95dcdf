package warewulfd

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/warewulf-ng/warewulf/internal/archive"
	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/image"
)

// Stage1Binary is the name of the two-stage boot's first stage, looked
// for in DATADIR/stage1/ and beside the warewulfd binary.
const Stage1Binary = "wwstage1"

// stage1Image is the stage-1 initramfs, built in memory from the binary:
// the binary as /init, the directories it mounts on, and a console.
type stage1Image struct {
	mu    sync.Mutex
	stamp fileStamp
	data  []byte
	etag  string
	mod   time.Time
}

// stage1Path finds the wwstage1 binary.
func stage1Path(cfg *config.Config) (string, error) {
	cands := []string{filepath.Join(cfg.DataDir(), "stage1", Stage1Binary)}
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(exe), Stage1Binary))
	}
	for _, c := range cands {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
			return c, nil
		}
	}
	return "", fmt.Errorf("no %s binary (looked at %s; `make wwstage1` builds it)", Stage1Binary, strings.Join(cands, ", "))
}

// get returns the archive, rebuilt when the binary changed.
func (s1 *stage1Image) get(cfg *config.Config) (*stage1Image, error) {
	path, err := stage1Path(cfg)
	if err != nil {
		return nil, err
	}
	stamp := stampOf(path)
	s1.mu.Lock()
	defer s1.mu.Unlock()
	if s1.data != nil && s1.stamp == stamp {
		return &stage1Image{data: s1.data, etag: s1.etag, mod: s1.mod}, nil
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, archive.Gzip)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "newroot"} {
		if err := w.WriteHeader(&archive.Header{Name: d, Mode: archive.TypeDir | 0o755}); err != nil {
			return nil, err
		}
	}
	if err := w.WriteHeader(&archive.Header{Name: "dev/console", Mode: archive.TypeChar | 0o600, RdevMajor: 5, RdevMinor: 1}); err != nil {
		return nil, err
	}
	if err := w.WriteFile(&archive.Header{Name: "init", Mode: archive.TypeReg | 0o755}, bin); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(buf.Bytes())
	s1.stamp, s1.data = stamp, buf.Bytes()
	s1.etag, s1.mod = fmt.Sprintf(`"s1-%x"`, sum[:8]), time.Unix(0, stamp.mtime)
	return &stage1Image{data: s1.data, etag: s1.etag, mod: s1.mod}, nil
}

// serveStage1 sends the stage-1 initramfs; it is the same for every node,
// but asked by MAC like every boot file, so the status shows the node.
func (s *Server) serveStage1(st *state, q *request) {
	img, err := s.stage1.get(st.cfg)
	if err != nil {
		q.fail(http.StatusNotFound, err.Error())
		return
	}
	h := q.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", img.etag)
	http.ServeContent(q.w, q.r, "", img.mod, bytes.NewReader(img.data))
}

// initramfsPatterns are where images keep the initramfs their own dracut
// (or initramfs-tools) built, as upstream Warewulf looks for them.
var initramfsPatterns = []string{"boot/initramfs-", "boot/initrd-", "boot/initrd.img-"}

// findInitramfs returns the initramfs of kernel version kver inside an
// image's root: a name that is one of the patterns, then the version, then
// the end or a dot (initramfs-VERSION.img, initrd.img-VERSION), never a
// variant such as VERSIONkdump.img. Links are followed inside the root only.
func findInitramfs(root, kver string) (string, error) {
	if kver == "" {
		return "", errors.New("the image's kernel version is unknown")
	}
	for _, pat := range initramfsPatterns {
		matches, _ := filepath.Glob(filepath.Join(root, pat+"*"))
		for _, m := range matches {
			rest, ok := strings.CutPrefix(filepath.Base(m), filepath.Base(pat)+kver)
			if !ok || (rest != "" && rest[0] != '.') {
				continue
			}
			p, err := securejoin.SecureJoin(root, strings.TrimPrefix(m, root))
			if err != nil {
				continue
			}
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("no initramfs for kernel %s in the image (looked for /boot/initramfs-%[1]s*, /boot/initrd-%[1]s*, /boot/initrd.img-%[1]s*; build one with dracut in the image)", kver)
}

// rootfsKernel is the version of the kernel in an image's rootfs that a
// node asks for (want: its kernel version, "" for the default; see
// image.ChooseKernel).
func rootfsKernel(root, want string) (string, error) {
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return "", errors.New("the image does not exist")
	}
	ks, err := image.FindKernels(root)
	if err != nil {
		return "", err
	}
	if k, ok := image.ChooseKernel(ks, want); ok {
		return k.Version, nil
	}
	if len(ks) == 0 {
		return "", errors.New("no kernel in the image (no /boot/vmlinuz-* or /lib/modules/*/vmlinuz)")
	}
	var have []string
	for _, k := range ks {
		have = append(have, k.Version)
	}
	if want == "" {
		return "", fmt.Errorf("only debug kernels in the image (%s): set the node's kernel version to one", strings.Join(have, ", "))
	}
	return "", fmt.Errorf("no kernel version %q in the image (it has %s)", want, strings.Join(have, ", "))
}

// initramfsFiles finds the node's image's own initramfs, for upstream's
// dracut iPXE template.
func (s *Server) initramfsFiles(st *state, n *nodeEntry) (*content, error) {
	if n.ImageName == "" {
		return nil, errors.New("node has no image")
	}
	kver := ""
	if n.Kernel != nil {
		kver = n.Kernel.Version
	}
	key := "initramfs\x00" + n.ImageName + "\x00" + kver
	if cs, ok := s.cache.get(key); ok {
		return cs[0], nil
	}
	root := st.cfg.ImageRootfs(n.ImageName)
	// The built image knows its kernel; as upstream, the dracut initramfs
	// needs no build: else the rootfs's own kernels say.
	if a, err := s.prov.Image(st.cfg, n.ImageName, kver); err == nil {
		kver = a.KernelVersion
	} else if kver, err = rootfsKernel(root, kver); err != nil {
		return nil, fmt.Errorf("image %q: %w", n.ImageName, err)
	}
	p, err := findInitramfs(root, kver)
	if err != nil {
		return nil, err
	}
	if !within(p, root) {
		return nil, fmt.Errorf("%s is outside the image", p)
	}
	return s.cache.put(key, &content{paths: []string{p}})[0], nil
}
