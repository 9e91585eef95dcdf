package warewulfd

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/warewulf-ng/warewulf/internal/stage1"
)

// digests remembers the SHA-256 of each version of the big files (images,
// kmods, initramfs), which goes out in every response's Repr-Digest so
// stage 1 can check what it unpacked. A version is named by its files'
// inode, size and mtime (a rebuild renames a new file into place); it is
// hashed once, on its first request, however many ask at the same time.
type digests struct {
	mu sync.Mutex
	m  map[string]string
	sf singleflight.Group
}

// maxDigests bounds the versions remembered (each is a few bytes; images
// are few).
const maxDigests = 4096

func (d *digests) get(paths []string) (string, error) {
	var key strings.Builder
	for _, p := range paths {
		s := stampOf(p)
		if !s.ok {
			return "", fmt.Errorf("%s: not found", p)
		}
		fmt.Fprintf(&key, "%s\x00%d\x00%d\x00%d\x00", p, s.ino, s.size, s.mtime)
	}
	k := key.String()
	d.mu.Lock()
	v, ok := d.m[k]
	d.mu.Unlock()
	if ok {
		return v, nil
	}
	r, err, _ := d.sf.Do(k, func() (any, error) {
		h := sha256.New()
		for _, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				return "", err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return "", err
			}
		}
		v := stage1.FormatDigest(h.Sum(nil))
		for _, p := range paths {
			if s := stampOf(p); !strings.Contains(k, fmt.Sprintf("%s\x00%d\x00%d\x00%d\x00", p, s.ino, s.size, s.mtime)) {
				return "", fmt.Errorf("%s changed while it was hashed", p)
			}
		}
		d.mu.Lock()
		if d.m == nil || len(d.m) >= maxDigests {
			d.m = map[string]string{}
		}
		d.m[k] = v
		d.mu.Unlock()
		return v, nil
	})
	if err != nil {
		return "", err
	}
	return r.(string), nil
}
