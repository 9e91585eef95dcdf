package warewulfd

import (
	"sync"
	"time"
)

// cacheTTL bounds how long a lookup of built files is reused. The image and
// overlay packages decide whether files are current (that may stat many
// inputs); asking them at most this often keeps a request a map lookup,
// and a rebuild shows within this time.
const cacheTTL = 2 * time.Second

// artifactCache remembers which files serve a (stage, node) or image.
type artifactCache struct {
	mu sync.RWMutex
	m  map[string]cacheEntry
}

type cacheEntry struct {
	files   []string
	expires time.Time
}

func (c *artifactCache) get(key string) ([]string, bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if !ok || time.Now().After(e.expires) {
		return nil, false
	}
	return e.files, true
}

func (c *artifactCache) put(key string, files []string) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cacheEntry{}
	}
	c.m[key] = cacheEntry{files: files, expires: time.Now().Add(cacheTTL)}
	c.mu.Unlock()
}

func (c *artifactCache) clear() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}
