package overlay

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofrs/flock"
	"github.com/klauspost/compress/gzip"

	"github.com/warewulf-ng/warewulf/internal/archive"
	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// formatVersion changes whenever what a build writes changes, so that an
// upgrade rebuilds everything once.
const formatVersion = "2" // 2: secret files left out of system overlays

// archivePerm is the mode of every built archive: they hold nodes' host
// keys and shadow files, for warewulfd's eyes only.
const archivePerm = 0o600

// Options tune a Builder; the zero value is the installed controller.
type Options struct {
	// HostRoot is where `include` reads the controller's files ("" is /);
	// tests point it at a fake root.
	HostRoot string
	// Redirect maps a controller path a template reads (IncludeBlock
	// "/etc/hosts") to the file to read instead: `wwctl configure
	// hostfile --hosts-file` keeps the head of the file it replaces.
	Redirect map[string]string
	// Workers render nodes in parallel (default GOMAXPROCS).
	Workers int
	// RescanAfter lets a build of named nodes trust its last look at the
	// overlays' files for this long (0: always look). BuildNode, called by
	// warewulfd per request, uses a second.
	RescanAfter time.Duration
}

// Builder builds overlay images and remembers, between calls, what it
// read: the merged node records of the last database it saw and the parsed
// templates of each overlay, so warewulfd's per-request BuildNode is cheap.
type Builder struct {
	cfg  *config.Config
	opts Options

	mu       sync.Mutex // one build at a time
	db       *node.DB
	cluster  *clusterView
	overlays map[string]*loadedOverlay
	keys     *keyStore
	reads    *readCache                        // files included during the current build
	shared   map[*parsedTemplate]*sharedRender // renders for no node in the current build
	recent   bool                              // the current build may reuse a recent scan

	imu     sync.Mutex // guards indexes, which Parts reads during a build
	indexes map[string]*index
}

// NewBuilder returns a Builder for cfg.
func NewBuilder(cfg *config.Config, opts Options) *Builder {
	if opts.HostRoot == "" {
		opts.HostRoot = "/"
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	return &Builder{cfg: cfg, opts: opts, overlays: map[string]*loadedOverlay{},
		keys: &keyStore{file: HostKeysFile(cfg)}, indexes: map[string]*index{}}
}

// clusterView is every node merged, with a hash of each record.
type clusterView struct {
	nodes    []*node.Node
	byName   map[string]int
	hashes   []string
	allHash  string
	ctl      Cluster
	ctlHash  string
	views    *viewCache
	host     string
	buildNow time.Time
}

func hashJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		data = []byte(fmt.Sprintf("%#v", v))
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func hashStrings(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		io.WriteString(h, p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// view merges every node of db, or returns the view of the last db when it
// is the same one and fresh is false: a *node.DB is treated as immutable
// once given to a Builder (node.Load gives a new one after a change).
func (b *Builder) view(db *node.DB, fresh bool) (*clusterView, error) {
	if b.db == db && b.cluster != nil && !fresh {
		return b.cluster, nil
	}
	nodes, err := db.AllMerged()
	if err != nil {
		return nil, err
	}
	v := &clusterView{nodes: nodes, byName: make(map[string]int, len(nodes)), hashes: make([]string, len(nodes))}
	var wg sync.WaitGroup
	w := b.opts.Workers
	for i := 0; i < w; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := i; j < len(nodes); j += w {
				v.hashes[j] = hashJSON(nodes[j])
			}
		}(i)
	}
	wg.Wait()
	for i, n := range nodes {
		v.byName[n.Name] = i
	}
	v.allHash = hashStrings(v.hashes...)
	v.host, _ = os.Hostname()
	v.ctl = newCluster(b.cfg, v.host)
	v.views = &viewCache{}
	v.ctlHash = hashJSON(v.ctl)
	b.db, b.cluster = db, v
	return v, nil
}

func buildTime() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(sec, 0).UTC()
		}
	}
	return time.Now()
}

// loadedOverlay is an overlay scanned and its templates parsed.
type loadedOverlay struct {
	ov        *Overlay
	entries   []Entry
	sig       string
	templates []*parsedTemplate
	scanned   time.Time
}

func (b *Builder) load(name string) (*loadedOverlay, error) {
	if l, ok := b.overlays[name]; ok && b.recent && time.Since(l.scanned) < b.opts.RescanAfter {
		return l, nil
	}
	ov, err := Find(b.cfg, name)
	if err != nil {
		return nil, err
	}
	entries, err := Scan(ov)
	if err != nil {
		return nil, err
	}
	sig := signature(ov.Dir, entries)
	if l, ok := b.overlays[name]; ok && l.sig == sig {
		l.scanned = time.Now()
		return l, nil
	}
	l := &loadedOverlay{ov: ov, entries: entries, sig: sig, scanned: time.Now()}
	for _, e := range entries {
		if !e.Template {
			continue
		}
		text, err := os.ReadFile(filepath.Join(ov.Rootfs(), e.Path))
		if err != nil {
			return nil, err
		}
		t, err := parseTemplate(name, e, string(text))
		if err != nil {
			// Reported when it is rendered: its siblings still render.
			t = &parsedTemplate{overlay: name, src: e.Path, out: strings.TrimSuffix(e.Path, TemplateSuffix), entry: e, err: err}
		}
		l.templates = append(l.templates, t)
	}
	b.overlays[name] = l
	return l, nil
}

// overlaySet is an ordered list of overlays as a node's system or runtime
// overlay names it; nodes with the same list share its archives.
type overlaySet struct {
	id        string
	names     []string
	static    []staticEntry // plain files, directories, symlinks: one shared archive
	dirs      map[string]Entry
	templates []*parsedTemplate
	man       *setManifest
	manName   string          // the manifest as pinned for the node entries built now
	nodeScope map[string]bool // templates (overlay/path) rendered per node
	err       error
}

type staticEntry struct {
	Entry
	root string // the rootfs it comes from
}

// setManifest is the shared part of a set, as built: which archives hold
// the plain files and the templates that render alike for every node, and
// which templates need a node.
type setManifest struct {
	ID        string   `json:"id"`
	Static    string   `json:"static,omitempty"`
	Cluster   string   `json:"cluster,omitempty"`
	NodeScope []string `json:"node_scope"`
	CtlHash   string   `json:"controller"`
	UsesNodes bool     `json:"uses_nodes"`
	NodesHash string   `json:"nodes,omitempty"`
	Deps      []dep    `json:"deps,omitempty"`
}

func (b *Builder) plan(names []string) *overlaySet {
	s := &overlaySet{names: names, dirs: map[string]Entry{}}
	var loaded []*loadedOverlay
	sigs := []string{formatVersion}
	for _, name := range names {
		l, err := b.load(name)
		if err != nil {
			s.err = err
			return s
		}
		loaded = append(loaded, l)
		sigs = append(sigs, name, l.sig)
	}
	s.id = hashStrings(sigs...)[:24]
	// A later overlay's file wins over an earlier one's at the same output
	// path, whether plain or template.
	owner := map[string]int{}
	for i, l := range loaded {
		for _, e := range l.entries {
			out := e.Path
			if e.Template {
				out = strings.TrimSuffix(out, TemplateSuffix)
			}
			if e.Type == archive.TypeDir {
				s.dirs[out] = e
			}
			owner[out] = i
		}
	}
	for i, l := range loaded {
		for _, e := range l.entries {
			if e.Template {
				continue
			}
			if e.Type != archive.TypeDir && owner[e.Path] != i {
				continue
			}
			if e.Type == archive.TypeDir && s.dirs[e.Path] != e {
				continue
			}
			s.static = append(s.static, staticEntry{e, l.ov.Rootfs()})
		}
		for _, t := range l.templates {
			if owner[t.out] == i {
				s.templates = append(s.templates, t)
			}
		}
	}
	sort.SliceStable(s.static, func(i, j int) bool { return s.static[i].Path < s.static[j].Path })
	if onlyParents(s.static, s.templates) {
		s.static = nil // the node archives make the directories they need
	}
	return s
}

// onlyParents tells whether the static entries are only directories that
// hold templates or other entries: then the node archives, which make the
// directories they need, make a static archive pointless.
func onlyParents(static []staticEntry, templates []*parsedTemplate) bool {
	var paths []string
	for _, e := range static {
		if e.Type != archive.TypeDir {
			return false
		}
		paths = append(paths, e.Path)
	}
	for _, t := range templates {
		paths = append(paths, t.src)
	}
	sort.Strings(paths)
	for _, e := range static {
		i := sort.SearchStrings(paths, e.Path+"/")
		if i >= len(paths) || !strings.HasPrefix(paths[i], e.Path+"/") {
			return false // an empty directory of its own
		}
	}
	return true
}

// Stats counts what a build did.
type Stats struct {
	Nodes     int // node images considered (nodes x kinds)
	Built     int
	Unchanged int
	Failed    int
	Shared    int // shared archives written
	HostKeys  int // ssh host keys made (once per node and type)
	// Withheld counts secret files left out of system overlays, and
	// WithheldFrom names their overlays (list them as runtime overlays).
	Withheld     int
	WithheldFrom []string
}

// Build builds the overlay images of kinds (System, Runtime; both if
// empty) for the named nodes (every node if names is empty). Nodes whose
// inputs did not change are left alone. Per-node failures do not stop the
// others; each distinct error is returned once, and a failed node keeps
// its previous image.
func (b *Builder) Build(db *node.DB, names []string, kinds ...string) (Stats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	unlock, err := b.lock()
	if err != nil {
		return Stats{}, err
	}
	defer unlock()
	b.sweepTemps()
	made := b.keys.made
	st, err := b.build(db, names, kinds)
	st.HostKeys = b.keys.made - made
	return st, err
}

// sweepTemps removes what builds killed mid-write left: temporaries of
// packs, indexes and shared archives. Only builds write those, and the
// caller holds the build lock, so none is being written. (Per-node
// copies are written by Parts, without the lock, and are left alone.)
func (b *Builder) sweepTemps() {
	for _, dir := range []string{filepath.Join(b.cfg.ProvisionDir(), "overlays"), b.cfg.OverlaySharedDir()} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if n := e.Name(); strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-") && e.Type().IsRegular() {
				os.Remove(filepath.Join(dir, n))
			}
		}
	}
}

// lock serializes builds of different processes (wwctl and warewulfd).
func (b *Builder) lock() (func(), error) {
	dir := filepath.Join(b.cfg.ProvisionDir(), "overlays")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l := flock.New(filepath.Join(dir, ".lock"))
	if err := l.Lock(); err != nil {
		return nil, err
	}
	return func() { l.Unlock() }, nil
}

type job struct {
	idx  int // into view.nodes
	kind string
	set  *overlaySet
}

func (b *Builder) build(db *node.DB, names []string, kinds []string) (Stats, error) {
	var st Stats
	if len(kinds) == 0 {
		kinds = []string{System, Runtime}
	}
	for _, k := range kinds {
		if k != System && k != Runtime {
			return st, fmt.Errorf("overlay kind %q is not %s or %s", k, System, Runtime)
		}
	}
	all := len(names) == 0
	b.recent = !all
	v, err := b.view(db, all)
	if err != nil {
		return st, err
	}
	v.buildNow = buildTime()
	if err := b.keys.load(); err != nil {
		return st, err
	}
	var idxs []int
	if all {
		for i := range v.nodes {
			idxs = append(idxs, i)
		}
	} else {
		for _, n := range names {
			i, ok := v.byName[n]
			if !ok {
				return st, fmt.Errorf("node %q does not exist", n)
			}
			idxs = append(idxs, i)
		}
	}
	sets := map[string]*overlaySet{}
	base := Data{Cluster: v.ctl.withTime(v.buildNow)}
	errs := &errList{}
	b.reads = newReadCache()
	b.shared = map[*parsedTemplate]*sharedRender{}
	defer func() { b.shared = nil }()
	for _, kind := range kinds {
		idx, err := b.index(kind)
		if err != nil {
			return st, err
		}
		var jobs []job
		for _, i := range idxs {
			n := v.nodes[i]
			list := []string(n.SystemOverlay)
			if kind == Runtime {
				list = n.RuntimeOverlay
			}
			key := strings.Join(list, "\x00")
			s, ok := sets[key]
			if !ok {
				s = b.plan(list)
				if s.err == nil {
					wrote, err := b.buildShared(s, v, base)
					st.Shared += wrote
					s.err = err
				}
				sets[key] = s
			}
			jobs = append(jobs, job{idx: i, kind: kind, set: s})
		}
		st.Nodes += len(jobs)
		if err := b.buildKind(kind, idx, jobs, v, base, &st, errs); err != nil {
			return st, err
		}
		if all {
			idx.forget(v.byName)
		}
	}
	if all && len(kinds) == 2 {
		b.collect(v)
	}
	return st, errs.err()
}

// buildKind renders the jobs of one kind, appends the new node archives to
// a new pack and replaces the kind's index.
func (b *Builder) buildKind(kind string, idx *index, jobs []job, v *clusterView, base Data, st *Stats, errs *errList) error {
	dir := filepath.Join(b.cfg.ProvisionDir(), "overlays")
	packName := fmt.Sprintf("%s-%x.pack", kind, time.Now().UnixNano())
	pw := &packWriter{path: filepath.Join(dir, packName)}
	defer pw.abort()
	depOK := newDepCache(b.keys)

	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex     // guards idx.Nodes writes, st and replaced
	var replaced []string // copies Parts made of archives now replaced
	builtBefore := st.Built
	for w := 0; w < b.opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs := b.newRenderState(v, base)
			pk := newPacker()
			for {
				j := int(next.Add(1) - 1)
				if j >= len(jobs) {
					return
				}
				jb := jobs[j]
				n := v.nodes[jb.idx]
				if jb.set.err != nil {
					mu.Lock()
					st.Failed++
					mu.Unlock()
					errs.add(forNode(jb.set.err, n.Name, jb.kind))
					continue
				}
				key := hashStrings(formatVersion, jb.kind, v.hashes[jb.idx], jb.set.id, v.ctlHash)[:32]
				mu.Lock()
				old := idx.Nodes[n.Name]
				mu.Unlock()
				if old != nil && old.Key == key && (!old.UsesNodes || old.NodesHash == v.allHash) && depOK.all(idx.depsOf(old)) {
					mu.Lock()
					st.Unchanged++
					if old.Set != jb.set.manName { // its own archive as it was, the set's new shared ones
						c := *old
						c.Set = jb.set.manName
						idx.own()
						idx.Nodes[n.Name] = &c
						idx.changed = true
					}
					mu.Unlock()
					continue
				}
				e, data, withheld, err := b.renderNode(jb, n, rs, pk)
				if len(withheld) > 0 {
					mu.Lock()
					st.Withheld += len(withheld)
					for _, o := range withheld {
						if !slices.Contains(st.WithheldFrom, o) {
							st.WithheldFrom = append(st.WithheldFrom, o)
						}
					}
					mu.Unlock()
				}
				if err != nil {
					mu.Lock()
					st.Failed++
					mu.Unlock()
					errs.add(err)
					continue
				}
				e.Key = key
				if e.UsesNodes {
					e.NodesHash = v.allHash
				}
				mu.Lock()
				if len(data) > 0 {
					e.Pack, e.Off, e.Len = packName, pw.off, int64(len(data))
					if _, err := pw.Write(data); err != nil {
						st.Failed++
						mu.Unlock()
						errs.add(err)
						continue
					}
				}
				idx.put(n.Name, e, rs.deps)
				st.Built++
				if old != nil && old.Sum != "" && old.Sum != e.Sum {
					replaced = append(replaced, b.copyPath(n.Name, kind, old.Sum))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Until the index is saved nothing built here counts: a full disk
	// fails them all, and the summary must not say they were built.
	err := pw.commit()
	if err == nil {
		err = b.keys.save()
	}
	if err == nil {
		err = b.saveIndex(kind, idx)
	}
	if err != nil {
		st.Failed += st.Built - builtBefore
		st.Built = builtBefore
		return fmt.Errorf("%s overlay images not saved, the previous ones stay: %w", kind, err)
	}
	// A reader holding the old copy sees it vanish and asks Parts again.
	for _, p := range replaced {
		os.Remove(p)
	}
	return nil
}

// packWriter appends node archives to a new pack, created on the first
// write: a build that changes nothing creates no file.
// newRenderState makes a renderer that shares the build's read cache.
func (b *Builder) newRenderState(v *clusterView, base Data) *renderState {
	rs := newRenderState(b.cfg, b.opts.HostRoot, b.keys, v.nodes, v.views, base)
	rs.reads = b.reads
	return rs
}

type packWriter struct {
	path string
	f    *safefile.File
	w    *bufio.Writer
	off  int64
}

func (p *packWriter) Write(data []byte) (int, error) {
	if p.f == nil {
		f, err := safefile.Create(p.path, archivePerm)
		if err != nil {
			return 0, err
		}
		p.f, p.w = f, bufio.NewWriterSize(f, 1<<20)
	}
	n, err := p.w.Write(data)
	p.off += int64(n)
	return n, err
}

func (p *packWriter) commit() error {
	if p.f == nil {
		return nil
	}
	if err := p.w.Flush(); err != nil {
		return err
	}
	return p.f.Commit()
}

func (p *packWriter) abort() {
	if p.f != nil {
		p.f.Abort()
	}
}

// renderNode renders the node-scope templates of a job's set for n and
// packs them; no data means the node has none. Secret outputs of a system
// overlay are left out; withheld names the overlay of each.
func (b *Builder) renderNode(jb job, n *node.Node, rs *renderState, pk *packer) (e *nodeEntry, data []byte, withheld []string, err error) {
	s := jb.set
	rs.deps, rs.usedNodes = nil, false
	var outs []output
	for _, t := range s.templates {
		if !s.nodeScope[t.overlay+"/"+t.src] {
			continue
		}
		o, err := rs.render(t, n)
		if err != nil {
			return nil, nil, withheld, err
		}
		for _, f := range o {
			if f.secret && jb.kind == System {
				withheld = append(withheld, t.overlay)
				continue
			}
			outs = append(outs, f)
		}
	}
	e = &nodeEntry{Set: s.manName, UsesNodes: rs.usedNodes}
	if len(outs) == 0 {
		return e, nil, withheld, nil
	}
	data, err = pk.pack(outs, s)
	if err != nil {
		return nil, nil, withheld, fmt.Errorf("node %s: %w", n.Name, err)
	}
	sum := sha256.Sum256(data)
	e.Sum = hex.EncodeToString(sum[:8])
	return e, data, withheld, nil
}

// depCache checks each dependency once per build: ten thousand nodes
// reading the same image file stat it once.
type depCache struct {
	keys *keyStore
	mu   sync.Mutex
	ok   map[dep]bool
}

func newDepCache(k *keyStore) *depCache { return &depCache{keys: k, ok: map[dep]bool{}} }

func (c *depCache) all(deps []dep) bool {
	for _, d := range deps {
		if strings.HasPrefix(d.Path, hostKeyDep) {
			if !c.keys.current(d) {
				return false
			}
			continue
		}
		c.mu.Lock()
		ok, seen := c.ok[d]
		c.mu.Unlock()
		if !seen {
			ok = c.keys.current(d)
			c.mu.Lock()
			c.ok[d] = ok
			c.mu.Unlock()
		}
		if !ok {
			return false
		}
	}
	return true
}

// errList keeps the first error of each distinct message, so ten thousand
// nodes failing on one template report it once.
type errList struct {
	mu    sync.Mutex
	seen  map[string]int
	first []error
}

func errKey(err error) string {
	var te *TemplateError
	if errors.As(err, &te) {
		return te.Overlay + "\x00" + te.File + "\x00" + strconv.Itoa(te.Line) + "\x00" + te.Msg
	}
	var se *setError
	if errors.As(err, &se) {
		return se.kind + "\x00" + se.err.Error()
	}
	return err.Error()
}

func (e *errList) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := errKey(err)
	if e.seen == nil {
		e.seen = map[string]int{}
	}
	if _, ok := e.seen[k]; !ok {
		e.first = append(e.first, err)
	}
	e.seen[k]++
}

func (e *errList) err() error {
	if len(e.first) == 0 {
		return nil
	}
	var lines []string
	for _, err := range e.first {
		line := err.Error()
		if n := e.seen[errKey(err)]; n > 1 {
			line += fmt.Sprintf(" (and %d more node images)", n-1)
		}
		lines = append(lines, line)
	}
	return &buildError{msg: strings.Join(lines, "\n"), errs: e.first}
}

// buildError is every distinct failure of a build; errors.As finds each.
type buildError struct {
	msg  string
	errs []error
}

func (e *buildError) Error() string   { return e.msg }
func (e *buildError) Unwrap() []error { return e.errs }

// forNode names the node in an error found while building what it shares.
func forNode(err error, nodeName, kind string) error {
	var te *TemplateError
	if errors.As(err, &te) && te.Node == "" {
		c := *te
		c.Node = nodeName
		return &c
	}
	return &setError{node: nodeName, kind: kind, err: err}
}

// setError is a failure shared by every node with an overlay set.
type setError struct {
	node, kind string
	err        error
}

func (e *setError) Error() string {
	return fmt.Sprintf("node %s: %s overlay: %v", e.node, e.kind, e.err)
}
func (e *setError) Unwrap() error { return e.err }

func (b *Builder) setManifestPath(id string) string {
	return filepath.Join(b.cfg.OverlaySharedDir(), "set-"+id+".json")
}

func readJSON(p string, v any) bool {
	data, err := os.ReadFile(p)
	return err == nil && json.Unmarshal(data, v) == nil
}

// buildShared makes sure set s has its static archive and its cluster
// archive (templates that render alike for all nodes) and knows which
// templates need a node. It returns how many archives it wrote.
func (b *Builder) buildShared(s *overlaySet, v *clusterView, base Data) (int, error) {
	shared := b.cfg.OverlaySharedDir()
	m := &setManifest{}
	if readJSON(b.setManifestPath(s.id), m) && m.ID == s.id && m.CtlHash == v.ctlHash &&
		(!m.UsesNodes || m.NodesHash == v.allHash) && newDepCache(b.keys).all(m.Deps) &&
		(m.Static == "" || exists(filepath.Join(shared, m.Static))) &&
		(m.Cluster == "" || exists(filepath.Join(shared, m.Cluster))) {
		s.setManifest(m)
		return 0, b.pinManifest(s, m)
	}
	m = &setManifest{ID: s.id, CtlHash: v.ctlHash, NodeScope: []string{}}
	wrote := 0
	if len(s.static) > 0 {
		m.Static = "static-" + s.id + ".img.gz"
		p := filepath.Join(shared, m.Static)
		if !exists(p) {
			if err := b.writeStatic(p, s); err != nil {
				return 0, err
			}
			wrote++
		}
	}
	// Render every template for no node in particular: those that never ask
	// for the node are the same everywhere and go into one shared archive.
	deps := map[string]dep{}
	var outs []output
	for _, r := range b.renderShared(s.templates, v, base) {
		t := r.t
		maps.Copy(deps, r.deps)
		m.UsesNodes = m.UsesNodes || r.usedNodes
		o, err := r.outs, r.err
		// A secret goes per node, where a system overlay leaves it out.
		if errors.Is(err, errNeedsNode) || err == nil && slices.ContainsFunc(o, func(f output) bool { return f.secret }) {
			m.NodeScope = append(m.NodeScope, t.overlay+"/"+t.src)
			continue
		}
		if err != nil {
			return 0, err
		}
		outs = append(outs, o...)
	}
	if m.UsesNodes {
		m.NodesHash = v.allHash
	}
	m.Deps = sortedDeps(deps)
	if len(outs) > 0 {
		data, err := newPacker().pack(outs, s)
		if err != nil {
			return 0, err
		}
		sum := sha256.Sum256(data)
		m.Cluster = "cluster-" + hex.EncodeToString(sum[:12]) + ".img.gz"
		p := filepath.Join(shared, m.Cluster)
		if !exists(p) {
			if err := safefile.WriteFile(p, data, archivePerm); err != nil {
				return 0, err
			}
			wrote++
		}
	}
	if err := b.pinManifest(s, m); err != nil {
		return 0, err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	if err := safefile.WriteFile(b.setManifestPath(s.id), data, 0o644); err != nil {
		return 0, err
	}
	s.setManifest(m)
	return wrote, nil
}

// sharedRender is a template rendered for no node in particular: what it
// wrote, read and whether it read the node list, or why it failed
// (errNeedsNode: it reads the node).
type sharedRender struct {
	t         *parsedTemplate
	outs      []output
	deps      map[string]dep
	usedNodes bool
	err       error
}

// renderShared renders templates for no node, each once per build (the
// system and runtime overlay sets often share one: hosts lists every
// node), on every core: some read every node, and while they render no
// node does.
func (b *Builder) renderShared(ts []*parsedTemplate, v *clusterView, base Data) []*sharedRender {
	if b.shared == nil {
		b.shared = map[*parsedTemplate]*sharedRender{}
	}
	res := make([]*sharedRender, len(ts))
	var todo []int
	for i, t := range ts {
		if r, ok := b.shared[t]; ok {
			res[i] = r
		} else {
			todo = append(todo, i)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(b.opts.Workers, len(todo)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs := b.newRenderState(v, base)
			for {
				j := int(next.Add(1) - 1)
				if j >= len(todo) {
					return
				}
				t := ts[todo[j]]
				rs.deps, rs.usedNodes = nil, false
				outs, err := rs.render(t, nil)
				res[todo[j]] = &sharedRender{t: t, outs: outs, deps: rs.deps, usedNodes: rs.usedNodes, err: err}
			}
		}()
	}
	wg.Wait()
	for _, i := range todo {
		b.shared[ts[i]] = res[i]
	}
	return res
}

// pinManifest writes m also under a name made of the set's id and a hash
// of m, and node entries point at that one. set-ID.json is the latest;
// while a build writes new shared archives, and after one that fails, an
// entry not (yet) rebuilt still finds the shared archives it was built
// with: a node gets its old image or its new one, never a mix.
func (b *Builder) pinManifest(s *overlaySet, m *setManifest) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	s.manName = s.id + "-" + hex.EncodeToString(sum[:8])
	if p := b.setManifestPath(s.manName); !exists(p) {
		return safefile.WriteFile(p, data, 0o644)
	}
	return nil
}

func (s *overlaySet) setManifest(m *setManifest) {
	s.man = m
	s.nodeScope = map[string]bool{}
	for _, t := range m.NodeScope {
		s.nodeScope[t] = true
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func sortedDeps(m map[string]dep) []dep {
	out := make([]dep, 0, len(m))
	for _, d := range m {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// writeStatic archives the plain files of a set, compressed on every core.
// The name carries the set's id, so it is written once and never changes.
func (b *Builder) writeStatic(p string, s *overlaySet) error {
	return safefile.WriteFrom(p, archivePerm, func(w io.Writer) error {
		aw, err := archive.NewWriter(w, archive.Gzip)
		if err != nil {
			return err
		}
		for _, e := range s.static {
			h := &archive.Header{Name: e.Path, Mode: e.Type | e.Mode, UID: e.UID, GID: e.GID, Mtime: e.Mtime / 1e9}
			switch e.Type {
			case archive.TypeDir:
				if err := aw.WriteHeader(h); err != nil {
					return err
				}
			case archive.TypeLink:
				if err := aw.WriteFile(h, []byte(e.Target)); err != nil {
					return err
				}
			default:
				f, err := os.Open(filepath.Join(e.root, e.Path))
				if err != nil {
					return err
				}
				st, err := f.Stat()
				if err == nil && st.Size() != e.Size {
					err = fmt.Errorf("%s changed while being archived", f.Name())
				}
				if err == nil {
					h.Size = e.Size
					if err = aw.WriteHeader(h); err == nil {
						_, err = aw.ReadFrom(f)
					}
				}
				f.Close()
				if err != nil {
					return err
				}
			}
		}
		return aw.Close()
	})
}

// packer writes small gzip-compressed cpio archives into memory, reusing
// its buffers from one node to the next.
type packer struct {
	out bytes.Buffer
	gz  *gzip.Writer
	bw  *bufio.Writer
}

func newPacker() *packer {
	p := &packer{}
	p.gz, _ = gzip.NewWriterLevel(&p.out, gzip.BestSpeed) // kilobytes per node: speed over the last percent
	p.bw = bufio.NewWriterSize(p.gz, 1<<20)
	return p
}

// pack archives outs, with their parent directories first (modes from the
// set's overlays, else 0755 root), and returns the compressed bytes; they
// stay valid until the next call.
func (p *packer) pack(outs []output, s *overlaySet) ([]byte, error) {
	p.out.Reset()
	p.gz.Reset(&p.out)
	p.bw.Reset(p.gz)
	cw := archive.NewCpioWriter(p.bw)
	// Sorted by path, and of two outputs with one path the later wins, as
	// upstream's later write does (two network devices naming one
	// interface; nodes.conf's load warns of that).
	sort.SliceStable(outs, func(i, j int) bool { return outs[i].path < outs[j].path })
	kept := outs[:0]
	for i, o := range outs {
		if i+1 < len(outs) && outs[i+1].path == o.path {
			continue
		}
		kept = append(kept, o)
	}
	outs = kept
	seen := map[string]bool{}
	for _, o := range outs {
		for _, d := range outputDirs(o.path) {
			if seen[d] {
				continue
			}
			seen[d] = true
			h := &archive.Header{Name: d, Mode: archive.TypeDir | 0o755}
			if e, ok := s.dirs[d]; ok {
				h.Mode, h.UID, h.GID, h.Mtime = archive.TypeDir|e.Mode, e.UID, e.GID, e.Mtime/1e9
			}
			if err := cw.WriteHeader(h); err != nil {
				return nil, err
			}
		}
	}
	for _, o := range outs {
		h := &archive.Header{Name: o.path, Mode: archive.TypeReg | o.mode, UID: o.uid, GID: o.gid}
		body := o.data
		if o.link != "" {
			h.Mode, body = archive.TypeLink|0o777, []byte(o.link)
		}
		if err := cw.WriteFile(h, body); err != nil {
			return nil, err
		}
	}
	if err := cw.Close(); err != nil {
		return nil, err
	}
	if err := p.gz.Close(); err != nil {
		return nil, err
	}
	return p.out.Bytes(), nil
}

// collect removes, after a build of every node, the shared archives no
// node's image uses (a failed node keeps its old ones) and the directories
// of nodes that no longer exist.
func (b *Builder) collect(v *clusterView) {
	keep := map[string]bool{}
	for _, kind := range []string{System, Runtime} {
		idx, err := b.loadIndex(kind)
		if err != nil {
			return
		}
		for _, e := range idx.Nodes {
			// The manifest the entry was built with, and its set's latest.
			id, _, _ := strings.Cut(e.Set, "-")
			for _, set := range []string{e.Set, id} {
				name := "set-" + set + ".json"
				if keep[name] {
					continue
				}
				keep[name] = true
				m := &setManifest{}
				if !readJSON(b.setManifestPath(set), m) {
					return
				}
				keep[m.Static], keep[m.Cluster] = true, true
			}
		}
	}
	shared := b.cfg.OverlaySharedDir()
	if ents, err := os.ReadDir(shared); err == nil {
		for _, e := range ents {
			if !keep[e.Name()] && !strings.HasPrefix(e.Name(), ".") {
				os.Remove(filepath.Join(shared, e.Name()))
			}
		}
	}
	top := filepath.Dir(shared)
	if ents, err := os.ReadDir(top); err == nil {
		for _, e := range ents {
			if _, ok := v.byName[e.Name()]; !ok && e.IsDir() && e.Name() != filepath.Base(shared) {
				os.RemoveAll(filepath.Join(top, e.Name()))
			}
		}
	}
}
