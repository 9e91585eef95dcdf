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

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/safefile"
	"github.com/warewulf-ng/warewulf/internal/sshkey"
)

// HostKey is one ssh host key of a node, in the files sshd reads.
// HostKey is one ssh host key pair of a node.
type HostKey = sshkey.Pair

// HostKeysFile holds every node's ssh host keys under cfg.KeyDir(), one
// line per key: "NODE TYPE BASE64(private) BASE64(public)". One file rather
// than four per node: on a cluster of 10,000 nodes, 40,000 small files cost
// more to create than the keys do to make.
func HostKeysFile(cfg *config.Config) string { return filepath.Join(cfg.KeyDir(), "ssh_host_keys") }

// keyStore makes each node's host keys once and keeps them, so a node
// keeps its identity across builds. It is safe for concurrent use.
type keyStore struct {
	file string
	mu   sync.Mutex
	keys map[string]*HostKey // "node type"
	stat fileStat
	new  bool  // keys made since the last save
	made int   // keys made by this store, for Stats
	all  int64 // allSum's cache; 0: to compute
}

type fileStat struct {
	size, mtime int64
	ino         uint64
}

func statOf(p string) (fileStat, bool) {
	st, err := os.Stat(p)
	if err != nil {
		return fileStat{}, false
	}
	fs := fileStat{size: st.Size(), mtime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(interface{ Ino() uint64 }); ok {
		fs.ino = sys.Ino()
	}
	return fs, true
}

// load reads the file if it changed since the last load.
func (k *keyStore) load() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	st, _ := statOf(k.file)
	if k.keys != nil && st == k.stat && !k.new {
		return nil
	}
	if k.new {
		return nil // unsaved keys of our own win until saved
	}
	keys := map[string]*HostKey{}
	data, err := os.ReadFile(k.file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 4 {
			return fmt.Errorf("%s:%d: want NODE TYPE PRIVATE PUBLIC", k.file, line)
		}
		priv, err1 := base64.StdEncoding.DecodeString(f[2])
		pub, err2 := base64.StdEncoding.DecodeString(f[3])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("%s:%d: bad base64", k.file, line)
		}
		keys[f[0]+" "+f[1]] = &HostKey{Type: f[1], Private: string(priv), Public: string(pub)}
	}
	k.keys, k.stat, k.all = keys, st, 0
	return nil
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
	k.keys[nodeName+" "+keyType] = hk
	k.new, k.all = true, 0
	k.made++
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
			k.keys[n+" "+keyType] = made[i]
			k.new, k.all = true, 0
			k.made++
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

// save writes the file if keys were made.
func (k *keyStore) save() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.new {
		return nil
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
	if err := os.MkdirAll(filepath.Dir(k.file), 0o700); err != nil {
		return err
	}
	if err := safefile.WriteFile(k.file, b.Bytes(), 0o600); err != nil {
		return err
	}
	k.new = false
	k.stat, _ = statOf(k.file)
	return nil
}
