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
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
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
const formatVersion = "1"

// Options tune a Builder; the zero value is the installed controller.
type Options struct {
	// HostRoot is where `include` reads the controller's files ("" is /);
	// tests point it at a fake root.
	HostRoot string
	// Workers render nodes in parallel (default GOMAXPROCS).
	Workers int
}

// Builder builds overlay images and remembers, between calls, what it
// read: the merged node records of the last database it saw and the parsed
// templates of each overlay, so warewulfd's per-request BuildNode is cheap.
type Builder struct {
	cfg  *config.Config
	opts Options

	mu       sync.Mutex
	db       *node.DB
	cluster  *clusterView
	overlays map[string]*loadedOverlay
}

// NewBuilder returns a Builder for cfg.
func NewBuilder(cfg *config.Config, opts Options) *Builder {
	if opts.HostRoot == "" {
		opts.HostRoot = "/"
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	return &Builder{cfg: cfg, opts: opts, overlays: map[string]*loadedOverlay{}}
}

// clusterView is every node merged, with a hash of each record.
type clusterView struct {
	nodes    []*node.Node
	byName   map[string]int
	hashes   []string
	allHash  string
	ctl      Controller
	ctlHash  string
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

func (b *Builder) view(db *node.DB) (*clusterView, error) {
	if b.db == db && b.cluster != nil {
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
	v.ctl = newController(b.cfg, v.host)
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
}

func (b *Builder) load(name string) (*loadedOverlay, error) {
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
		return l, nil
	}
	l := &loadedOverlay{ov: ov, entries: entries, sig: sig}
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
			return nil, err
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

// nodeManifest is what Parts reads: a node's overlay image of one kind.
type nodeManifest struct {
	Key       string   `json:"key"`
	Set       string   `json:"set"`
	Overlays  []string `json:"overlays"`
	Archive   string   `json:"archive,omitempty"`
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
}

// Build builds the overlay images of kinds (System, Runtime; both if
// empty) for the named nodes (every node if names is empty). Nodes whose
// inputs did not change are left alone. Per-node failures do not stop the
// others; the first error of each distinct message is returned, and a
// failed node keeps its previous image.
func (b *Builder) Build(db *node.DB, names []string, kinds ...string) (Stats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	lock := flock.New(filepath.Join(b.cfg.ProvisionDir(), "overlays", ".lock"))
	if err := os.MkdirAll(filepath.Dir(lock.Path()), 0o755); err != nil {
		return Stats{}, err
	}
	if err := lock.Lock(); err != nil {
		return Stats{}, err
	}
	defer lock.Unlock()
	return b.build(db, names, kinds)
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
	v, err := b.view(db)
	if err != nil {
		return st, err
	}
	v.buildNow = buildTime()
	all := len(names) == 0
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
	var jobs []job
	for _, i := range idxs {
		n := v.nodes[i]
		for _, kind := range kinds {
			list := []string(n.SystemOverlay)
			if kind == Runtime {
				list = n.RuntimeOverlay
			}
			key := strings.Join(list, "\x00")
			s, ok := sets[key]
			if !ok {
				s = b.plan(list)
				sets[key] = s
			}
			jobs = append(jobs, job{idx: i, kind: kind, set: s})
		}
	}
	st.Nodes = len(jobs)

	batch := &safefile.Batch{}
	defer batch.Abort()
	errs := &errList{}
	keys := &keyStore{cfg: b.cfg}
	base := Data{BuildHost: v.host, BuildTime: v.buildNow, Controller: v.ctl}
	setKeys := make([]string, 0, len(sets))
	for k := range sets {
		setKeys = append(setKeys, k)
	}
	sort.Strings(setKeys)
	for _, k := range setKeys {
		s := sets[k]
		if s.err != nil {
			continue
		}
		rs := newRenderState(b.cfg, b.opts.HostRoot, keys, v.nodes, base)
		wrote, err := b.buildShared(s, v, rs, batch)
		st.Shared += wrote
		if err != nil {
			s.err = err
		}
	}

	// Render nodes in parallel; each worker owns a renderer and a compressor.
	var next int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	type result struct {
		built, failed, same int
		old                 []string
	}
	results := make([]result, b.opts.Workers)
	for w := 0; w < b.opts.Workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rs := newRenderState(b.cfg, b.opts.HostRoot, keys, v.nodes, base)
			pk := newPacker()
			r := &results[w]
			for {
				mu.Lock()
				j := next
				next++
				mu.Unlock()
				if int(j) >= len(jobs) {
					return
				}
				jb := jobs[j]
				n := v.nodes[jb.idx]
				if jb.set.err != nil {
					r.failed++
					errs.add(forNode(jb.set.err, n.Name, jb.kind))
					continue
				}
				built, old, err := b.buildNode(jb, v, rs, pk, batch)
				switch {
				case err != nil:
					r.failed++
					errs.add(err)
				case built:
					r.built++
					if old != "" {
						r.old = append(r.old, old)
					}
				default:
					r.same++
				}
			}
		}(w)
	}
	wg.Wait()
	var old []string
	for _, r := range results {
		st.Built += r.built
		st.Failed += r.failed
		st.Unchanged += r.same
		old = append(old, r.old...)
	}
	if err := batch.Commit(); err != nil {
		return st, err
	}
	for _, p := range old {
		os.Remove(p)
	}
	if all && len(kinds) == 2 && st.Failed == 0 {
		b.collect(v, sets)
	}
	return st, errs.err()
}

// errList keeps the first error of each distinct message, so ten thousand
// nodes failing on one template report it once.
type errList struct {
	mu    sync.Mutex
	seen  map[string]int
	first []error
}

func (e *errList) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	msg := err.Error()
	var te *TemplateError
	if errors.As(err, &te) {
		msg = te.Overlay + te.File + strconv.Itoa(te.Line) + te.Msg
	}
	if e.seen == nil {
		e.seen = map[string]int{}
	}
	if _, ok := e.seen[msg]; !ok {
		e.first = append(e.first, err)
	}
	e.seen[msg]++
}

func (e *errList) err() error {
	if len(e.first) == 0 {
		return nil
	}
	var lines []string
	for _, err := range e.first {
		line := err.Error()
		msg := line
		var te *TemplateError
		if errors.As(err, &te) {
			msg = te.Overlay + te.File + strconv.Itoa(te.Line) + te.Msg
		}
		if n := e.seen[msg]; n > 1 {
			line += fmt.Sprintf(" (and %d more nodes)", n-1)
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
	return fmt.Errorf("node %s: %s overlay: %w", nodeName, kind, err)
}

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
func (b *Builder) buildShared(s *overlaySet, v *clusterView, rs *renderState, batch *safefile.Batch) (int, error) {
	shared := b.cfg.OverlaySharedDir()
	m := &setManifest{}
	if readJSON(b.setManifestPath(s.id), m) && m.ID == s.id && m.CtlHash == v.ctlHash &&
		(!m.UsesNodes || m.NodesHash == v.allHash) && depsUnchanged(m.Deps) &&
		(m.Static == "" || exists(filepath.Join(shared, m.Static))) &&
		(m.Cluster == "" || exists(filepath.Join(shared, m.Cluster))) {
		s.man = m
		return 0, nil
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
	rs.deps, rs.usedNodes = nil, false
	var outs []output
	for _, t := range s.templates {
		o, err := rs.render(t, nil)
		if errors.Is(err, errNeedsNode) {
			m.NodeScope = append(m.NodeScope, t.overlay+"/"+t.src)
			continue
		}
		if err != nil {
			return 0, err
		}
		outs = append(outs, o...)
	}
	m.UsesNodes = rs.usedNodes
	if m.UsesNodes {
		m.NodesHash = v.allHash
	}
	m.Deps = sortedDeps(rs.deps)
	if len(outs) > 0 {
		pk := newPacker()
		data, err := pk.pack(outs, s)
		if err != nil {
			return 0, err
		}
		sum := sha256.Sum256(data)
		m.Cluster = "cluster-" + hex.EncodeToString(sum[:12]) + ".img.gz"
		p := filepath.Join(shared, m.Cluster)
		if !exists(p) {
			if err := batch.WriteFile(p, data, 0o644); err != nil {
				return 0, err
			}
			wrote++
		}
	}
	data, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	if err := batch.WriteFile(b.setManifestPath(s.id), data, 0o644); err != nil {
		return 0, err
	}
	s.man = m
	return wrote, nil
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
	return safefile.WriteFrom(p, 0o644, func(w io.Writer) error {
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
	p.gz, _ = gzip.NewWriterLevel(&p.out, gzip.DefaultCompression)
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
	sort.SliceStable(outs, func(i, j int) bool { return outs[i].path < outs[j].path })
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
	for i, o := range outs {
		if i > 0 && outs[i-1].path == o.path {
			return nil, fmt.Errorf("two templates write %s", o.path)
		}
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

func (b *Builder) nodeManifestPath(nodeName, kind string) string {
	return filepath.Join(b.cfg.OverlayProvisionDir(nodeName), kind+".json")
}

// buildNode renders one node's templates of one kind, unless its inputs
// are those of the image it has. It returns whether it built and the
// archive the new one replaces.
func (b *Builder) buildNode(jb job, v *clusterView, rs *renderState, pk *packer, batch *safefile.Batch) (bool, string, error) {
	n := v.nodes[jb.idx]
	s := jb.set
	key := hashStrings(formatVersion, jb.kind, v.hashes[jb.idx], s.id, v.ctlHash)
	dir := b.cfg.OverlayProvisionDir(n.Name)
	old := &nodeManifest{}
	hadOld := readJSON(b.nodeManifestPath(n.Name, jb.kind), old)
	if hadOld && old.Key == key && (!old.UsesNodes || old.NodesHash == v.allHash) &&
		(old.Archive == "" || exists(filepath.Join(dir, old.Archive))) && depsUnchanged(old.Deps) {
		return false, "", nil
	}
	scope := map[string]bool{}
	for _, t := range s.man.NodeScope {
		scope[t] = true
	}
	rs.deps, rs.usedNodes = nil, false
	var outs []output
	for _, t := range s.templates {
		if !scope[t.overlay+"/"+t.src] {
			continue
		}
		o, err := rs.render(t, n)
		if err != nil {
			if errors.Is(err, errNeedsNode) { // cannot happen with a node
				err = fmt.Errorf("overlay %s: %s: %w", t.overlay, t.src, err)
			}
			return false, "", err
		}
		outs = append(outs, o...)
	}
	m := &nodeManifest{Key: key, Set: s.id, Overlays: s.names, UsesNodes: rs.usedNodes, Deps: sortedDeps(rs.deps)}
	if m.UsesNodes {
		m.NodesHash = v.allHash
	}
	if len(outs) > 0 {
		data, err := pk.pack(outs, s)
		if err != nil {
			return false, "", fmt.Errorf("node %s: %w", n.Name, err)
		}
		sum := sha256.Sum256(data)
		m.Archive = jb.kind + "-" + hex.EncodeToString(sum[:8]) + ".img.gz"
		if err := batch.WriteFile(filepath.Join(dir, m.Archive), data, 0o644); err != nil {
			return false, "", err
		}
	}
	data, err := json.Marshal(m)
	if err != nil {
		return false, "", err
	}
	if err := batch.WriteFile(b.nodeManifestPath(n.Name, jb.kind), data, 0o644); err != nil {
		return false, "", err
	}
	replaced := ""
	if hadOld && old.Archive != "" && old.Archive != m.Archive {
		replaced = filepath.Join(dir, old.Archive)
	}
	return true, replaced, nil
}

// collect removes, after a build of every node, the shared archives no set
// uses and the images of nodes that no longer exist.
func (b *Builder) collect(v *clusterView, sets map[string]*overlaySet) {
	keep := map[string]bool{}
	for _, s := range sets {
		if s.man == nil {
			return // a set failed: keep everything
		}
		keep["set-"+s.id+".json"] = true
		keep[s.man.Static] = true
		keep[s.man.Cluster] = true
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

// Parts returns the archives of a built image, in order.
func (b *Builder) Parts(nodeName, kind string) ([]string, error) {
	if kind != System && kind != Runtime {
		return nil, fmt.Errorf("overlay kind %q is not %s or %s", kind, System, Runtime)
	}
	if err := node.ValidName(nodeName); err != nil {
		return nil, err
	}
	m := &nodeManifest{}
	if !readJSON(b.nodeManifestPath(nodeName, kind), m) {
		return nil, fmt.Errorf("node %s has no %s overlay image: run wwctl overlay build %s", nodeName, kind, nodeName)
	}
	s := &setManifest{}
	if !readJSON(b.setManifestPath(m.Set), s) {
		return nil, fmt.Errorf("node %s: %s overlay image is incomplete: run wwctl overlay build %s", nodeName, kind, nodeName)
	}
	var parts []string
	shared := b.cfg.OverlaySharedDir()
	if s.Static != "" {
		parts = append(parts, filepath.Join(shared, s.Static))
	}
	if s.Cluster != "" {
		parts = append(parts, filepath.Join(shared, s.Cluster))
	}
	if m.Archive != "" {
		parts = append(parts, filepath.Join(b.cfg.OverlayProvisionDir(nodeName), m.Archive))
	}
	for _, p := range parts {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("node %s: %s is missing: run wwctl overlay build %s", nodeName, p, nodeName)
		}
	}
	return parts, nil
}
