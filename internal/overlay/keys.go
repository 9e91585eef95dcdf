package overlay

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/gofrs/flock"
	"golang.org/x/sys/unix"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/safefile"
	"github.com/warewulf-ng/warewulf/internal/sshkey"
)

// HostKey is one ssh host key pair of a node.
type HostKey = sshkey.Pair

// HostKeysFile holds every node's ssh host keys under cfg.KeyDir(), one
// line per key: "NODE TYPE BASE64(private) BASE64(public)". One file rather
// than four per node: on a cluster of 10,000 nodes, 40,000 small files cost
// more to create than the keys do to make.
func HostKeysFile(cfg *config.Config) string { return filepath.Join(cfg.KeyDir(), "ssh_host_keys") }

// keyStore makes each node's host keys once and keeps them, so a node
// keeps its identity across builds. It is safe for concurrent use, and
// several stores (of several processes: wwctl, warewulfd) may share the
// file: a save merges into what the file holds then, under a lock, and a
// key already in the file is never replaced.
type keyStore struct {
	file    string
	mu      sync.Mutex
	keys    map[string]*HostKey // "node type"
	stat    fileStat
	pending map[string]*HostKey // keys made since the last save
	made    int                 // keys made by this store, for Stats
	all     int64               // allSum's cache; 0: to compute
}

type fileStat struct {
	size, mtime, ctime int64
	ino                uint64
}

func statOf(p string) (fileStat, bool) {
	var st unix.Stat_t
	if unix.Stat(p, &st) != nil {
		return fileStat{}, false
	}
	return fileStat{size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), ino: st.Ino}, true
}

// load reads the file if it changed since the last load. Keys made here
// and not saved yet stay, unless the file now has a key of that node and
// type (another process saved first): the file's wins.
func (k *keyStore) load() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	st, _ := statOf(k.file)
	if k.keys != nil && st == k.stat {
		return nil
	}
	keys, err := readHostKeys(k.file)
	if err != nil {
		return err
	}
	k.merge(keys, st)
	return nil
}

// merge makes the file's keys (read when it had stat st) plus the pending
// ones it lacks the store's keys.
func (k *keyStore) merge(file map[string]*HostKey, st fileStat) {
	for id, hk := range k.pending {
		if file[id] == nil {
			file[id] = hk
		} else {
			delete(k.pending, id)
		}
	}
	k.keys, k.stat, k.all = file, st, 0
}

// readHostKeys parses the key file; a missing file holds no keys.
func readHostKeys(file string) (map[string]*HostKey, error) {
	keys := map[string]*HostKey{}
	data, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("%s:%d: want NODE TYPE PRIVATE PUBLIC", file, line)
		}
		priv, err1 := base64.StdEncoding.DecodeString(f[2])
		pub, err2 := base64.StdEncoding.DecodeString(f[3])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s:%d: bad base64", file, line)
		}
		keys[f[0]+" "+f[1]] = &HostKey{Type: f[1], Private: string(priv), Public: string(pub)}
	}
	return keys, nil
}

// add records a key made here; the caller holds k.mu.
func (k *keyStore) add(id string, hk *HostKey) {
	if k.pending == nil {
		k.pending = map[string]*HostKey{}
	}
	k.keys[id], k.pending[id] = hk, hk
	k.all = 0
	k.made++
}

// get returns node's key of keyType, making it if there is none.
func (k *keyStore) get(nodeName, keyType string) (*HostKey, error) {
	if err := k.load(); err != nil {
		return nil, err
	}
	k.mu.Lock()
	hk := k.keys[nodeName+" "+keyType]
	k.mu.Unlock()
	if hk != nil {
		return hk, nil
	}
	hk, err := sshkey.New(keyType, "root@"+nodeName)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if old := k.keys[nodeName+" "+keyType]; old != nil {
		return old, nil
	}
	k.add(nodeName+" "+keyType, hk)
	return hk, nil
}

// has reports whether node has a key of keyType.
func (k *keyStore) has(nodeName, keyType string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys[nodeName+" "+keyType] != nil
}

// fill makes the keys of keyType that the nodes lack, on every core: a
// template listing every node's key would otherwise make them one by one.
func (k *keyStore) fill(names []string, keyType string, workers int) error {
	if err := k.load(); err != nil {
		return err
	}
	var missing []string
	k.mu.Lock()
	for _, n := range names {
		if k.keys[n+" "+keyType] == nil {
			missing = append(missing, n)
		}
	}
	k.mu.Unlock()
	made := make([]*HostKey, len(missing))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(missing) && errs[w] == nil; i += workers {
				made[i], errs[w] = sshkey.New(keyType, "root@"+missing[i])
			}
		}(w)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, n := range missing {
		if k.keys[n+" "+keyType] == nil {
			k.add(n+" "+keyType, made[i])
		}
	}
	return nil
}

// allSum identifies the whole store for the build cache (the dependency of
// a template that read other nodes' keys): it changes when any key is
// made, replaced or deleted.
func (k *keyStore) allSum() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.all != 0 {
		return k.all
	}
	var sum uint64 // a sum of per-key hashes: no sort of 20,000 names
	for id, hk := range k.keys {
		h := fnv.New64a()
		h.Write([]byte(id))
		h.Write([]byte{0})
		h.Write([]byte(hk.Public))
		sum += h.Sum64()
	}
	k.all = int64(sum>>1) | 1 // never 0, the "to compute" mark
	return k.all
}

// sum identifies a key for the build cache; 0 if there is none.
func (k *keyStore) sum(nodeName, keyType string) int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	hk := k.keys[nodeName+" "+keyType]
	if hk == nil {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(hk.Private))
	return int64(h.Sum64() >> 1)
}

// save adds the keys made since the last save to the file. Under the
// file's lock it reads the file again and writes it with the keys it holds
// now plus ours, so keys another process saved meanwhile are kept; where
// it saved a key of the same node and type first, its key stays and ours
// is dropped (the templates that used ours see the change at the next
// build, as for any other key change).
func (k *keyStore) save() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.pending) == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(k.file), 0o700); err != nil {
		return err
	}
	lock := flock.New(k.file + ".lock")
	if err := lock.Lock(); err != nil {
		return fmt.Errorf("locking %s: %w", k.file, err)
	}
	defer lock.Unlock()
	// Stores only ever add keys, so a file of the size, inode and times we
	// last saw holds what we read then: no need to parse it again.
	if st, ok := statOf(k.file); !ok || st != k.stat {
		file, err := readHostKeys(k.file)
		if err != nil {
			return err
		}
		k.merge(file, st)
	}
	names := make([]string, 0, len(k.keys))
	for n := range k.keys {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		hk := k.keys[n]
		fmt.Fprintf(&b, "%s %s %s\n", n, base64.StdEncoding.EncodeToString([]byte(hk.Private)), base64.StdEncoding.EncodeToString([]byte(hk.Public)))
	}
	if err := safefile.WriteFile(k.file, b.Bytes(), 0o600); err != nil {
		return err
	}
	k.pending = nil
	k.stat, _ = statOf(k.file)
	return nil
}
