package warewulfd

import (
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warewulf-ng/warewulf/internal/archive"
)

// cacheTTL bounds how long a lookup of built files is reused. The image and
// overlay packages decide whether files are current (that may stat many
// inputs); asking them at most this often keeps a request a map lookup,
// and a rebuild shows within this time.
const cacheTTL = 2 * time.Second

// Small bodies (runtime overlays, which every node fetches again every
// minute) are kept in memory so a request needs no file system calls;
// memBudget bounds the memory that takes (10,000 runtime overlays of 6 KB
// fit).
const (
	smallBody = 64 << 10
	memBudget = 64 << 20
)

// content is one response body: files sent one after the other.
type content struct {
	key   string // its entry in the artifactCache
	paths []string
	comp  archive.Compression // how the body is compressed (None: not an archive)
	// Set when the body was small enough to keep in memory; large bodies
	// are opened per request and sent with sendfile.
	data   []byte
	stamps []fileStamp // of paths when data was read
	mod    time.Time
	etag   string
	// checked is when the stamps last matched (UnixNano); they are looked
	// at again after freshCheck.
	checked atomic.Int64
}

// freshCheck is how often an in-memory body is compared with its files.
const freshCheck = 200 * time.Millisecond

// fresh reports whether the in-memory body still matches its files: a
// rebuild renames new files into place, which changes their stamps.
func (ct *content) fresh() bool {
	now := time.Now().UnixNano()
	if now-ct.checked.Load() < int64(freshCheck) {
		return true
	}
	for _, st := range ct.stamps {
		if stampOf(st.path) != st {
			return false
		}
	}
	ct.checked.Store(now)
	return true
}

// artifactCache remembers which files serve a (stage, node) or image.
type artifactCache struct {
	mu        sync.Mutex
	m         map[string]cacheEntry
	mem       int64
	nextSweep time.Time
}

type cacheEntry struct {
	c       []*content
	expires time.Time
}

func (c *artifactCache) get(key string) ([]*content, bool) {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok || time.Now().After(e.expires) {
		return nil, false
	}
	return e.c, true
}

// put remembers contents under key, reading each whole into memory when
// it is small and the budget allows.
func (c *artifactCache) put(key string, out ...*content) []*content {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cacheEntry{}
	}
	if now.After(c.nextSweep) {
		for k, e := range c.m {
			if now.After(e.expires) {
				c.forget(k, e)
			}
		}
		c.nextSweep = now.Add(cacheTTL)
	}
	if old, ok := c.m[key]; ok {
		c.forget(key, old)
	}
	for _, ct := range out {
		ct.key = key
		if c.mem < memBudget && ct.load() {
			c.mem += int64(len(ct.data))
		}
	}
	c.m[key] = cacheEntry{c: out, expires: now.Add(cacheTTL)}
	return out
}

func (c *artifactCache) forget(key string, e cacheEntry) {
	for _, ct := range e.c {
		c.mem -= int64(len(ct.data))
	}
	delete(c.m, key)
}

// load reads a small body into memory; it reports false (and leaves the
// body to be opened per request) for a large or unreadable one.
func (ct *content) load() bool {
	var stamps []fileStamp
	for _, p := range ct.paths {
		stamps = append(stamps, stampOf(p))
	}
	files, size, mod, etag, err := openFiles(ct.paths)
	if err != nil {
		return false
	}
	defer closeAll(files)
	if size > smallBody {
		return false
	}
	data := make([]byte, 0, size)
	for _, f := range files {
		b, err := readFull(f)
		if err != nil {
			return false
		}
		data = append(data, b...)
	}
	if int64(len(data)) != size {
		return false
	}
	ct.data, ct.stamps, ct.mod, ct.etag = data, stamps, mod, etag
	return true
}

func readFull(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, fi.Size())
	_, err = f.ReadAt(b, 0)
	return b, err
}

// drop forgets the entry that holds ct, so the next lookup asks the image
// or overlay package again (ct's files are gone).
func (c *artifactCache) drop(ct *content) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[ct.key]; ok {
		for _, x := range e.c {
			if x == ct {
				c.forget(ct.key, e)
				return
			}
		}
	}
}

func (c *artifactCache) clear() {
	c.mu.Lock()
	c.m, c.mem = nil, 0
	c.mu.Unlock()
}
