package overlay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// The per-node archives of one kind live in pack files, appended one after
// the other, and an index says where each node's is: on this kind of disk
// creating a file costs as much as building ten nodes' archives, so a
// build of 10,000 nodes writes a few files, not 20,000. Parts copies a
// node's archive out of the pack into cfg.OverlayProvisionDir(node) the
// first time it is asked for; Ranges gives the byte ranges without copying.

// maxPacks is how many packs an index may point into before the next
// build copies the live archives into one.
const maxPacks = 8

// index is one kind's map of node archives. Dependencies are kept in one
// table: ten thousand nodes including the same image file share one entry.
type index struct {
	Version string                `json:"version"`
	Deps    []dep                 `json:"deps"`
	Nodes   map[string]*nodeEntry `json:"nodes"`

	depIdx  map[dep]int
	changed bool
	shared  bool // Nodes and Deps are the cached index's: copy before changing
	stat    fileStat
}

// nodeEntry is one node's image of one kind, as built.
type nodeEntry struct {
	Key       string `json:"k"`           // hash of the node's inputs
	Set       string `json:"s"`           // its overlay set (set-ID.json)
	UsesNodes bool   `json:"u,omitempty"` // a template read every node
	NodesHash string `json:"n,omitempty"`
	Deps      []int  `json:"d,omitempty"` // into index.Deps
	Pack      string `json:"p,omitempty"` // "" if the node has no archive of its own
	Off       int64  `json:"o,omitempty"`
	Len       int64  `json:"l,omitempty"`
	Sum       string `json:"h,omitempty"` // names the copy Parts makes
}

func (b *Builder) indexPath(kind string) string {
	return filepath.Join(b.cfg.ProvisionDir(), "overlays", kind+".index")
}

// loadIndex returns the kind's index, read again only when the file
// changed. The result is shared: do not modify it.
func (b *Builder) loadIndex(kind string) (*index, error) {
	b.imu.Lock()
	defer b.imu.Unlock()
	p := b.indexPath(kind)
	st, ok := statOf(p)
	if cur := b.indexes[kind]; cur != nil && cur.stat == st {
		return cur, nil
	}
	idx := &index{Version: formatVersion, Nodes: map[string]*nodeEntry{}}
	if ok {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(data, idx); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if idx.Version != formatVersion || idx.Nodes == nil {
			idx = &index{Version: formatVersion, Nodes: map[string]*nodeEntry{}}
		}
	}
	idx.stat = st
	b.indexes[kind] = idx
	return idx, nil
}

// index returns the kind's index for a build to change; it copies the
// cached one on the first change, so checking an up-to-date node copies
// nothing.
func (b *Builder) index(kind string) (*index, error) {
	cur, err := b.loadIndex(kind)
	if err != nil {
		return nil, err
	}
	return &index{Version: formatVersion, Deps: cur.Deps, Nodes: cur.Nodes, stat: cur.stat, shared: true}, nil
}

func (idx *index) own() {
	if !idx.shared {
		return
	}
	nodes := make(map[string]*nodeEntry, len(idx.Nodes)+1)
	for k, v := range idx.Nodes {
		nodes[k] = v
	}
	idx.Nodes, idx.Deps, idx.shared = nodes, append([]dep(nil), idx.Deps...), false
}

func (idx *index) depsOf(e *nodeEntry) []dep {
	out := make([]dep, 0, len(e.Deps))
	for _, i := range e.Deps {
		if i < 0 || i >= len(idx.Deps) {
			return []dep{{Path: "corrupt index", Size: -2}}
		}
		out = append(out, idx.Deps[i])
	}
	return out
}

// put records a built node; the caller holds the build's lock.
func (idx *index) put(name string, e *nodeEntry, deps map[string]dep) {
	idx.own()
	if idx.depIdx == nil {
		idx.depIdx = make(map[dep]int, len(idx.Deps))
		for i, d := range idx.Deps {
			idx.depIdx[d] = i
		}
	}
	for _, d := range sortedDeps(deps) {
		i, ok := idx.depIdx[d]
		if !ok {
			i = len(idx.Deps)
			idx.Deps = append(idx.Deps, d)
			idx.depIdx[d] = i
		}
		e.Deps = append(e.Deps, i)
	}
	idx.Nodes[name] = e
	idx.changed = true
}

// forget drops the nodes that no longer exist.
func (idx *index) forget(exist map[string]int) {
	for name := range idx.Nodes {
		if _, ok := exist[name]; !ok {
			idx.own()
			delete(idx.Nodes, name)
			idx.changed = true
		}
	}
}

// saveIndex compacts the dependency table (and the packs, when there are
// too many), replaces the index and removes the packs nothing points to.
func (b *Builder) saveIndex(kind string, idx *index) error {
	if !idx.changed {
		return nil
	}
	dir := filepath.Dir(b.indexPath(kind))
	live := map[string]bool{}
	for _, e := range idx.Nodes {
		if e.Pack != "" {
			live[e.Pack] = true
		}
	}
	if len(live) > maxPacks {
		if err := b.repack(kind, idx); err != nil {
			return err
		}
		live = map[string]bool{}
		for _, e := range idx.Nodes {
			if e.Pack != "" {
				live[e.Pack] = true
			}
		}
	}
	old := idx.Deps
	idx.Deps, idx.depIdx = nil, nil
	remap := map[int]int{}
	names := make([]string, 0, len(idx.Nodes))
	for n := range idx.Nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e := *idx.Nodes[n]
		deps := make([]int, len(e.Deps))
		for i, d := range e.Deps {
			j, ok := remap[d]
			if !ok {
				j = len(idx.Deps)
				idx.Deps = append(idx.Deps, old[d])
				remap[d] = j
			}
			deps[i] = j
		}
		e.Deps = deps
		idx.Nodes[n] = &e
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := safefile.WriteFile(b.indexPath(kind), data, 0o644); err != nil {
		return err
	}
	idx.changed, idx.depIdx = false, nil
	idx.stat, _ = statOf(b.indexPath(kind))
	b.imu.Lock()
	b.indexes[kind] = idx
	b.imu.Unlock()
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if n := e.Name(); strings.HasPrefix(n, kind+"-") && strings.HasSuffix(n, ".pack") && !live[n] {
				os.Remove(filepath.Join(dir, n))
			}
		}
	}
	return nil
}

// repack copies every live node archive into one new pack.
func (b *Builder) repack(kind string, idx *index) error {
	dir := filepath.Dir(b.indexPath(kind))
	name := fmt.Sprintf("%s-%x.pack", kind, time.Now().UnixNano())
	f, err := safefile.Create(filepath.Join(dir, name), archivePerm)
	if err != nil {
		return err
	}
	defer f.Abort()
	names := make([]string, 0, len(idx.Nodes))
	for n, e := range idx.Nodes {
		if e.Pack != "" {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		a, c := idx.Nodes[names[i]], idx.Nodes[names[j]]
		if a.Pack != c.Pack {
			return a.Pack < c.Pack
		}
		return a.Off < c.Off
	})
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var off int64
	moved := map[string]*nodeEntry{}
	for _, n := range names {
		e := idx.Nodes[n]
		src := files[e.Pack]
		if src == nil {
			if src, err = os.Open(filepath.Join(dir, e.Pack)); err != nil {
				return err
			}
			files[e.Pack] = src
		}
		if _, err := io.Copy(f, io.NewSectionReader(src, e.Off, e.Len)); err != nil {
			return err
		}
		c := *e
		c.Pack, c.Off = name, off
		moved[n] = &c
		off += e.Len
	}
	if err := f.Commit(); err != nil {
		return err
	}
	for n, e := range moved {
		idx.Nodes[n] = e
	}
	return nil
}

// Part is a byte range of a built file: Length bytes from Offset.
type Part struct {
	Path           string
	Offset, Length int64
}

// Ranges returns the byte ranges which, sent one after the other, make
// node's overlay image of kind, without copying anything: the shared
// archives whole, then the node's own archive inside its pack.
func (b *Builder) Ranges(nodeName, kind string) ([]Part, error) {
	if kind != System && kind != Runtime {
		return nil, fmt.Errorf("overlay kind %q is not %s or %s", kind, System, Runtime)
	}
	if err := node.ValidName(nodeName); err != nil {
		return nil, err
	}
	idx, err := b.loadIndex(kind)
	if err != nil {
		return nil, err
	}
	e := idx.Nodes[nodeName]
	if e == nil {
		return nil, fmt.Errorf("node %s has no %s overlay image: run wwctl overlay build %s", nodeName, kind, nodeName)
	}
	s := &setManifest{}
	if !readJSON(b.setManifestPath(e.Set), s) {
		// A gone manifest (a build collected it after this index was
		// read) says so, so that Parts looks again.
		_, err := os.Stat(b.setManifestPath(e.Set))
		if !errors.Is(err, fs.ErrNotExist) {
			err = errors.New("unreadable set manifest")
		}
		return nil, fmt.Errorf("node %s: %s overlay image is incomplete (%w): run wwctl overlay build %s", nodeName, kind, err, nodeName)
	}
	var parts []Part
	for _, name := range []string{s.Static, s.Cluster} {
		if name == "" {
			continue
		}
		p := filepath.Join(b.cfg.OverlaySharedDir(), name)
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w: run wwctl overlay build %s", nodeName, err, nodeName)
		}
		parts = append(parts, Part{Path: p, Length: st.Size()})
	}
	if e.Pack != "" {
		parts = append(parts, Part{Path: filepath.Join(filepath.Dir(b.indexPath(kind)), e.Pack), Offset: e.Off, Length: e.Len})
	}
	return parts, nil
}

// Parts is Ranges as whole files: the node's own archive is copied out of
// its pack into cfg.OverlayProvisionDir(node) the first time.
func (b *Builder) Parts(nodeName, kind string) ([]string, error) {
	for attempt := 0; ; attempt++ {
		paths, err := b.parts(nodeName, kind)
		if err != nil && attempt == 0 && errors.Is(err, fs.ErrNotExist) {
			continue // a build replaced the pack meanwhile: look again
		}
		return paths, err
	}
}

func (b *Builder) parts(nodeName, kind string) ([]string, error) {
	ranges, err := b.Ranges(nodeName, kind)
	if err != nil {
		return nil, err
	}
	idx, err := b.loadIndex(kind)
	if err != nil {
		return nil, err
	}
	e := idx.Nodes[nodeName]
	var paths []string
	for _, r := range ranges {
		if !strings.HasSuffix(r.Path, ".pack") {
			paths = append(paths, r.Path)
			continue
		}
		p := b.copyPath(nodeName, kind, e.Sum)
		dir, name := filepath.Dir(p), filepath.Base(p)
		if !exists(p) {
			if err := copyRange(p, r); err != nil {
				return nil, err
			}
			if ents, err := os.ReadDir(dir); err == nil {
				for _, d := range ents {
					if n := d.Name(); n != name && strings.HasPrefix(n, kind+"-") && strings.HasSuffix(n, ".img.gz") {
						os.Remove(filepath.Join(dir, n))
					}
				}
			}
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// copyPath is where Parts copies a node's archive out of its pack.
func (b *Builder) copyPath(nodeName, kind, sum string) string {
	return filepath.Join(b.cfg.OverlayProvisionDir(nodeName), kind+"-"+sum+".img.gz")
}

func copyRange(dst string, r Part) error {
	src, err := os.Open(r.Path)
	if err != nil {
		return err
	}
	defer src.Close()
	return safefile.WriteFrom(dst, archivePerm, func(w io.Writer) error {
		_, err := io.Copy(w, io.NewSectionReader(src, r.Offset, r.Length))
		return err
	})
}
