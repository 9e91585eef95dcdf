package overlay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"

	"github.com/Masterminds/sprig/v3"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/dhcp"
	"github.com/warewulf-ng/warewulf/internal/image"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// errNeedsNode stops a cluster-wide render: the template reads the node.
var errNeedsNode = errors.New("this template reads the node")

// errAbort stops a render where the template called abort: it writes nothing.
var errAbort = errors.New("abort")

func fmtAny(v any) string { return fmt.Sprint(v) }

// output is one file a template produced.
type output struct {
	path     string
	mode     uint32
	uid, gid uint32
	link     string // non-empty: a symlink to link
	skip     bool
	secret   bool // only for the runtime overlay (the `secret` function)
	start    int  // offset of its body in the render buffer
	data     []byte
}

// dep is a file a render read, identified as make would.
type dep struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	Mtime int64  `json:"mtime"` // -1: absent
}

// hostKeyDep prefixes the dependency on a host key ("hostkey:NODE TYPE").
const hostKeyDep = "hostkey:"

// allHostKeysDep is the dependency on every node's host keys (hostKeyOf).
const allHostKeysDep = "hostkeys:*"

func statDep(p string) dep {
	st, err := os.Stat(p)
	if err != nil {
		return dep{Path: p, Size: -1, Mtime: -1}
	}
	return dep{Path: p, Size: st.Size(), Mtime: st.ModTime().UnixNano()}
}

// current reports whether a dependency is as it was.
func (k *keyStore) current(d dep) bool {
	if d.Path == allHostKeysDep {
		return k.allSum() == d.Mtime
	}
	if name, ok := strings.CutPrefix(d.Path, hostKeyDep); ok {
		n, t, _ := strings.Cut(name, " ")
		return k.sum(n, t) == d.Mtime
	}
	return statDep(d.Path) == d
}

// parsedTemplate is one .ww file, parsed once per build.
type parsedTemplate struct {
	overlay string
	src     string // path in the overlay, with .ww
	out     string // default output path, without .ww
	entry   Entry
	tmpl    *template.Template
	err     error // it did not parse: reported when it is rendered
}

// stubFuncs gives the parser every function name; each render binds its own.
var stubFuncs = func() template.FuncMap {
	m := sprig.TxtFuncMap()
	// The controller's environment is no input of the cache and no business
	// of the nodes.
	delete(m, "env")
	delete(m, "expandenv")
	for name, f := range regexFuncs {
		if _, ok := m[name]; !ok {
			panic("sprig has no function " + name)
		}
		m[name] = f
	}
	for name := range (&renderState{}).ownFuncs() {
		m[name] = func(...any) (string, error) { return "", nil }
	}
	return m
}()

func parseTemplate(overlay string, e Entry, text string) (*parsedTemplate, error) {
	t, err := template.New(e.Path).Funcs(stubFuncs).Option("missingkey=default").Parse(text)
	if err != nil {
		return nil, templateError(overlay, e.Path, "", err)
	}
	return &parsedTemplate{overlay: overlay, src: e.Path, out: strings.TrimSuffix(e.Path, TemplateSuffix), entry: e, tmpl: t}, nil
}

// TemplateError is a template that failed to parse or render.
type TemplateError struct {
	Overlay, File string
	Line          int
	Node          string
	Msg           string
}

func (e *TemplateError) Error() string {
	where := "all nodes"
	if e.Node != "" {
		where = "node " + e.Node
	}
	line := ""
	if e.Line > 0 {
		line = fmt.Sprintf(" line %d", e.Line)
	}
	return fmt.Sprintf("overlay %s, file %s%s, %s: %s", e.Overlay, e.File, line, where, e.Msg)
}

var tmplErrRE = regexp.MustCompile(`^template: ([^:]*):(\d+):(?:\d+:)? ?(.*)$`)

func templateError(overlay, file, nodeName string, err error) error {
	var te *TemplateError
	if errors.As(err, &te) {
		return err
	}
	e := &TemplateError{Overlay: overlay, File: file, Node: nodeName, Msg: err.Error()}
	if m := tmplErrRE.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[2])
		e.Msg = m[3]
		e.Msg = strings.TrimPrefix(e.Msg, fmt.Sprintf("executing %q ", file))
	}
	return e
}

// readCache reads each included file once per build, however many nodes
// include it, and remembers its stat as the dependency; it stats each
// other dependency once per build too.
type readCache struct {
	mu    sync.Mutex
	m     map[string]*readResult
	stats map[string]dep // addDep's
}

type readResult struct {
	once sync.Once
	data string
	err  error
	dep  dep
}

func newReadCache() *readCache {
	return &readCache{m: map[string]*readResult{}, stats: map[string]dep{}}
}

func (c *readCache) get(path string, read func() ([]byte, error)) *readResult {
	c.mu.Lock()
	r, ok := c.m[path]
	if !ok {
		r = &readResult{}
		c.m[path] = r
	}
	c.mu.Unlock()
	r.once.Do(func() {
		r.dep = statDep(path)
		data, err := read()
		r.data, r.err = string(data), err
	})
	return r
}

// stat is statDep(p), once per build.
func (c *readCache) stat(p string) dep {
	c.mu.Lock()
	d, ok := c.stats[p]
	c.mu.Unlock()
	if ok {
		return d
	}
	d = statDep(p)
	c.mu.Lock()
	if first, ok := c.stats[p]; ok {
		d = first // another worker's look counts, as one look per build
	} else {
		c.stats[p] = d
	}
	c.mu.Unlock()
	return d
}

// renderState is one worker's renderer: its template clones are bound to
// it, so workers render in parallel without sharing state.
type renderState struct {
	hostRoot string
	redirect map[string]string // Options.Redirect
	cfg      *config.Config
	keys     *keyStore
	reads    *readCache
	node     *node.Node   // nil while rendering for all nodes
	nodes    []*node.Node // all nodes
	views    *viewCache
	base     Data
	data     Data // the dot of a render for no node
	clones   map[*parsedTemplate]*template.Template

	// per node
	nview  *TNode
	flat   map[string]*TNetDev
	ndot   nodeData // the dot of its renders
	ndotOK bool

	// per render
	usedNodes bool
	deps      map[string]dep
	buf       bytes.Buffer
	outs      []output
	tmpl      *parsedTemplate
	aborted   bool
}

// viewCache holds the template views of every node, made once per build
// the first time a template asks for .AllNodes.
type viewCache struct {
	once  sync.Once
	views []*TNode
}

func newRenderState(cfg *config.Config, hostRoot string, keys *keyStore, nodes []*node.Node, views *viewCache, base Data) *renderState {
	if views == nil {
		views = &viewCache{}
	}
	return &renderState{hostRoot: hostRoot, cfg: cfg, keys: keys, nodes: nodes, views: views, base: base, clones: map[*parsedTemplate]*template.Template{}, reads: newReadCache()}
}

// view is the node's template view, made once per node.
func (st *renderState) view() *TNode {
	if st.nview == nil {
		st.nview = viewOf(st.node)
		// As upstream: without a kernel version of its own, the node's is
		// its image's default kernel (image.DefaultKernel).
		if st.nview.Kernel.Version == "" && st.node.ImageName != "" {
			st.nview.Kernel.Version = st.imageKernel(st.node.ImageName)
		}
	}
	return st.nview
}

// imageKernel is the default kernel version of an image, looked up once
// per build; the image's kernel directories are dependencies of the render.
func (st *renderState) imageKernel(name string) string {
	if strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
		return ""
	}
	rootfs := st.cfg.ImageRootfs(name)
	r := st.reads.get("kernel:"+rootfs, func() ([]byte, error) {
		ks, err := image.FindKernels(rootfs)
		if err != nil {
			return nil, err
		}
		k, ok := image.DefaultKernel(ks)
		if !ok {
			return nil, nil
		}
		return []byte(k.Version), nil
	})
	for _, d := range kernelDirs {
		st.addDep(rootfs + "/" + d)
	}
	return r.data
}

// kernelDirs are where an image's kernels are (image.FindKernels).
var kernelDirs = []string{"boot", "lib/modules", "usr/lib/modules"}

func (st *renderState) flatNetDevs(n *TNode) map[string]*TNetDev {
	if st.flat == nil {
		st.flat = flatNetDevs(n.NetDevs)
	}
	return st.flat
}

func (st *renderState) allViews() []*TNode {
	st.views.once.Do(func() {
		st.views.views = make([]*TNode, len(st.nodes))
		for i, n := range st.nodes {
			st.views.views[i] = viewOf(n)
		}
	})
	return st.views.views
}

func (st *renderState) clone(t *parsedTemplate) (*template.Template, error) {
	if c, ok := st.clones[t]; ok {
		return c, nil
	}
	c, err := t.tmpl.Clone()
	if err != nil {
		return nil, err
	}
	c.Funcs(st.ownFuncs())
	st.clones[t] = c
	return c, nil
}

// render runs t for n (nil: for all nodes) and returns its outputs.
// errNeedsNode means t must be rendered per node. A template that called
// abort renders nothing (no outputs, no error).
func (st *renderState) render(t *parsedTemplate, n *node.Node) ([]output, error) {
	outs, _, err := st.renderAll(t, n)
	return outs, err
}

// renderAll is render that also returns, for a template that aborted, the
// text it wrote before it did (for `overlay show`).
func (st *renderState) renderAll(t *parsedTemplate, n *node.Node) ([]output, []byte, error) {
	if t.err != nil {
		return nil, nil, t.err
	}
	c, err := st.clone(t)
	if err != nil {
		return nil, nil, err
	}
	if st.node != n || n == nil {
		st.nview, st.flat, st.ndotOK = nil, nil, false
	}
	st.node, st.tmpl, st.aborted = n, t, false
	st.buf.Reset()
	st.outs = append(st.outs[:0], output{path: t.out, mode: t.entry.Mode, uid: t.entry.UID, gid: t.entry.GID})
	// One dot per worker, not one per render: the dot is large.
	var dot any
	if n == nil {
		st.data = st.base
		st.data.Overlay, st.data.st = t.overlay, st
		st.data.BuildSource = t.src
		dot = &st.data
	} else {
		if !st.ndotOK {
			st.ndot.fill(st.base.Cluster, st)
			st.ndotOK = true
		}
		st.ndot.Overlay, st.ndot.BuildSource = t.overlay, t.src
		dot = &st.ndot
	}
	if err := c.Execute(&st.buf, dot); err != nil {
		if errors.Is(err, errNeedsNode) {
			return nil, nil, errNeedsNode
		}
		if !errors.Is(err, errAbort) {
			name := ""
			if n != nil {
				name = n.Name
			}
			return nil, nil, templateError(t.overlay, t.src, name, err)
		}
		st.aborted = true
	}
	body := st.buf.Bytes()
	if st.aborted {
		end := len(body)
		if len(st.outs) > 1 {
			end = st.outs[1].start
		}
		return nil, append([]byte(nil), body[:end]...), nil
	}
	var res []output
	for i, o := range st.outs {
		end := len(body)
		if i+1 < len(st.outs) {
			end = st.outs[i+1].start
		}
		o.data = body[o.start:end]
		// As upstream: once a template names files, what it wrote before
		// the first one is dropped, unless it made that a symlink.
		if o.skip || (i == 0 && len(st.outs) > 1 && o.link == "") {
			continue
		}
		o.data = append([]byte(nil), o.data...)
		res = append(res, o)
	}
	return res, nil, nil
}

func (st *renderState) cur() *output { return &st.outs[len(st.outs)-1] }

func (st *renderState) addStat(d dep) {
	if st.deps == nil {
		st.deps = map[string]dep{}
	}
	st.deps[d.Path] = d
}

// addDep makes p a dependency of the render, as it is now: stat once per
// build, however many nodes depend on it (as readCache does for what
// templates read).
func (st *renderState) addDep(p string) {
	if st.deps == nil {
		st.deps = map[string]dep{}
	}
	if _, ok := st.deps[p]; !ok {
		st.deps[p] = st.reads.stat(p)
	}
}

// ownFuncs are the functions beyond sprig's. Those that read the node fail
// with errNeedsNode in a render for all nodes.
func (st *renderState) ownFuncs() template.FuncMap {
	return template.FuncMap{
		// include reads a file of the controller.
		"include": func(p string) (string, error) {
			full := filepath.Join(st.hostRoot, filepath.Clean("/"+p))
			r := st.reads.get(full, func() ([]byte, error) { return os.ReadFile(full) })
			st.addStat(r.dep)
			if r.err != nil {
				return "", fmt.Errorf("include %s: %w", p, unwrapPath(r.err))
			}
			return r.data, nil
		},
		// includeImage reads a file of the node's image; "" if it has none.
		"includeImage": func(p string) (string, error) {
			if st.node == nil {
				return "", errNeedsNode
			}
			return st.imageFile(st.node.ImageName, p)
		},
		// includeGlob reads every controller file matching a pattern, in
		// name order, one after the other.
		"includeGlob": func(pattern string) (string, error) {
			full := filepath.Join(st.hostRoot, filepath.Clean("/"+pattern))
			st.addDep(filepath.Dir(full))
			matches, err := filepath.Glob(full)
			if err != nil {
				return "", fmt.Errorf("includeGlob %s: %w", pattern, err)
			}
			var b strings.Builder
			for _, m := range matches {
				data, err := os.ReadFile(m)
				st.addDep(m)
				if err != nil {
					return "", fmt.Errorf("includeGlob %s: %w", pattern, unwrapPath(err))
				}
				b.Write(data)
				if len(data) > 0 && data[len(data)-1] != '\n' {
					b.WriteByte('\n')
				}
			}
			return b.String(), nil
		},
		// file starts another output file; what follows goes into it. A
		// relative name is beside the template, an absolute one from the
		// overlay's root.
		"file": func(p string) (string, error) {
			if p == "" {
				return "", errors.New("file: empty name")
			}
			name := p
			if !path.IsAbs(name) {
				name = path.Join(path.Dir(st.tmpl.out), name)
				if name == ".." || strings.HasPrefix(name, "../") {
					return "", fmt.Errorf("file %q: leaves the overlay", p)
				}
			}
			clean, err := CleanPath(name)
			if err != nil {
				return "", fmt.Errorf("file %q: %w", p, err)
			}
			e := st.tmpl.entry
			st.outs = append(st.outs, output{path: clean, mode: e.Mode, uid: e.UID, gid: e.GID, start: st.buf.Len()})
			return "", nil
		},
		// secret marks the current output as a secret: a system overlay,
		// which iPXE fetches without any proof of who asks, leaves it out.
		"secret": func() string { st.cur().secret = true; return "" },
		// softlink makes the current output a symlink to target.
		"softlink": func(target string) string {
			st.cur().link = target
			return ""
		},
		// ImportLink makes the current output a symlink to where a link of
		// the controller points.
		"ImportLink": func(lnk string) (string, error) {
			full := filepath.Join(st.hostRoot, filepath.Clean("/"+lnk))
			target, err := filepath.EvalSymlinks(full)
			if err != nil {
				return "", fmt.Errorf("ImportLink: %s: %w", lnk, unwrapPath(err))
			}
			st.addDep(full)
			if st.hostRoot != "" {
				target = "/" + strings.TrimPrefix(strings.TrimPrefix(target, filepath.Clean(st.hostRoot)), "/")
			}
			st.cur().link = target
			return "", nil
		},
		// readlink resolves a link of the controller.
		"readlink": func(lnk string) (string, error) {
			full := filepath.Join(st.hostRoot, filepath.Clean("/"+lnk))
			target, err := filepath.EvalSymlinks(full)
			if err != nil {
				return "", fmt.Errorf("readlink: %s: %w", lnk, unwrapPath(err))
			}
			st.addDep(full)
			if st.hostRoot != "" {
				target = "/" + strings.TrimPrefix(strings.TrimPrefix(target, filepath.Clean(st.hostRoot)), "/")
			}
			return target, nil
		},
		// abort stops the template: it writes nothing.
		"abort": func() (string, error) { return "", errAbort },
		// nobackup: upstream keeps no .wwbackup of the file; an image has
		// nothing to back up, so there is nothing to do.
		"nobackup": func() string { return "" },
		// Include reads a controller file (relative: in warewulf's
		// configuration directory), without its final newline; "" if it
		// does not exist.
		"Include": func(p string) (string, error) {
			full := st.controllerPath(p)
			r := st.reads.get(full, func() ([]byte, error) { return os.ReadFile(full) })
			st.addStat(r.dep)
			if r.err != nil && !errors.Is(r.err, fs.ErrNotExist) {
				return "", fmt.Errorf("Include %s: %w", p, unwrapPath(r.err))
			}
			return strings.TrimSuffix(r.data, "\n"), nil
		},
		// IncludeBlock reads a controller file up to the first line that
		// contains mark, and ends with mark; only mark if there is no file.
		"IncludeBlock": func(p, mark string) (string, error) {
			full := st.controllerPath(p)
			r := st.reads.get(full, func() ([]byte, error) { return os.ReadFile(full) })
			st.addStat(r.dep)
			if r.err != nil {
				if errors.Is(r.err, fs.ErrNotExist) {
					return mark, nil
				}
				return "", fmt.Errorf("IncludeBlock %s: %w", p, unwrapPath(r.err))
			}
			var b strings.Builder
			sc := bufio.NewScanner(strings.NewReader(r.data))
			sc.Buffer(make([]byte, 64*1024), 16<<20)
			for sc.Scan() {
				if strings.Contains(sc.Text(), mark) {
					break
				}
				b.WriteString(sc.Text())
				b.WriteByte('\n')
			}
			b.WriteString(mark)
			return b.String(), nil
		},
		// IncludeFrom reads a file of an image, without its final newline;
		// "" if there is no such image or file.
		"IncludeFrom": func(image, p string) (string, error) {
			data, err := st.imageFile(image, p)
			return strings.TrimSuffix(data, "\n"), err
		},
		"basename": path.Base,
		"inc":      func(i int) int { return i + 1 },
		"dec":      func(i int) int { return i - 1 },
		// UniqueField keeps the first line for each value of field index
		// (lines without it are kept).
		"UniqueField":       uniqueField,
		"SystemdEscape":     systemdEscape,
		"SystemdEscapePath": systemdEscapePath,
		// IgnitionJson is the node's disks and file systems as an Ignition
		// config ("" when it has none).
		"IgnitionJson": func() (string, error) {
			if st.node == nil {
				return "", errNeedsNode
			}
			return ignitionJSON(st.view()), nil
		},
		// skip drops the current output file.
		"skip": func() string { st.cur().skip = true; return "" },
		// symlink makes the current output a symlink to target.
		"symlink": func(target string) (string, error) {
			if target == "" {
				return "", errors.New("symlink: empty target")
			}
			st.cur().link = target
			return "", nil
		},
		// mode sets the current output's permission bits (write 0600).
		"mode": func(m int) (string, error) {
			if m < 0 || m > 0o7777 {
				return "", fmt.Errorf("mode: %o is not a file mode", m)
			}
			st.cur().mode = uint32(m)
			return "", nil
		},
		// owner sets the current output's owner.
		"owner": func(uid, gid int) (string, error) {
			if uid < 0 || gid < 0 || uid > 1<<32-1 || gid > 1<<32-1 {
				return "", fmt.Errorf("owner: %d:%d is not a UID:GID", uid, gid)
			}
			st.cur().uid, st.cur().gid = uint32(uid), uint32(gid)
			return "", nil
		},
		// hostKey returns the node's ssh host key of a type, made once on
		// the controller and kept.
		"hostKey": func(keyType string) (*HostKey, error) {
			if st.node == nil {
				return nil, errNeedsNode
			}
			k, err := st.keys.get(st.node.Name, keyType)
			if err == nil {
				p := hostKeyDep + st.node.Name + " " + keyType
				st.addStat(dep{Path: p, Mtime: st.keys.sum(st.node.Name, keyType)})
			}
			return k, err
		},
		// hostKeyOf returns the public line of another node's host key,
		// making it if needed (with those of every node lacking one of
		// that type). Never the private half: it is that node's alone. The
		// answer depends on which nodes exist (as .Nodes does) and on the
		// key store, not on the node being rendered.
		"hostKeyOf": func(nodeName, keyType string) (string, error) {
			st.usedNodes = true
			i := sort.Search(len(st.nodes), func(i int) bool { return st.nodes[i].Name >= nodeName })
			if i == len(st.nodes) || st.nodes[i].Name != nodeName {
				return "", fmt.Errorf("hostKeyOf: node %q does not exist", nodeName)
			}
			if !st.keys.has(nodeName, keyType) {
				names := make([]string, len(st.nodes))
				for j, n := range st.nodes {
					names[j] = n.Name
				}
				if err := st.keys.fill(names, keyType, runtime.GOMAXPROCS(0)); err != nil {
					return "", fmt.Errorf("hostKeyOf %s %s: %w", nodeName, keyType, err)
				}
			}
			k, err := st.keys.get(nodeName, keyType)
			if err != nil {
				return "", err
			}
			st.addStat(dep{Path: allHostKeysDep, Mtime: st.keys.allSum()})
			return k.Public, nil
		},
		// prefix turns a netmask into a prefix length ("255.255.255.0" -> 24).
		// numbered lists the tags DNS1, DNS2, ... (or route1, ...) in order.
		"numbered": numbered,
		"prefix":   func(mask any) int { return prefixLen(fmt.Sprint(mask)) },
		// mergeAccounts returns the lines of base (passwd, group or shadow)
		// followed by those of extra whose name is not in base.
		"mergeAccounts": mergeAccounts,
		// dhcpBoot is the boot-file decision of warewulfd's built-in DHCP
		// server (dhcp.Plan: .Rules in order, the first match wins, and
		// .Matches, the dnsmasq tags they use), for the host overlay's
		// dnsmasq and dhcpd configs. With `dhcp: tftp` it names the iPXE
		// binaries present in ipxesource, so it depends on that directory.
		"dhcpBoot": func() (*dhcp.Plan, error) {
			if dhcp.ServesTFTP(st.cfg) {
				dir := st.cfg.IpxeSourceDir()
				st.addDep(dir)
				for _, f := range st.cfg.TFTP.IPXE {
					st.addDep(filepath.Dir(filepath.Join(dir, f)))
				}
			}
			return dhcp.NewPlan(st.cfg)
		},
	}
}

// controllerPath is where a template's controller file is: a relative
// name in warewulf's configuration directory.
func (st *renderState) controllerPath(p string) string {
	if !path.IsAbs(p) {
		return filepath.Join(st.cfg.SysconfDir(), filepath.Clean("/"+p))
	}
	if r, ok := st.redirect[path.Clean(p)]; ok {
		return r
	}
	return filepath.Join(st.hostRoot, filepath.Clean(p))
}

// imageFile reads a file of an image (symlinks resolve inside it); "" if
// there is no such image or file.
func (st *renderState) imageFile(image, p string) (string, error) {
	if image == "" || strings.ContainsAny(image, "/\x00") || image == "." || image == ".." {
		return "", nil
	}
	rootfs := st.cfg.ImageRootfs(image)
	rel := filepath.Clean("/" + p)[1:]
	r := st.reads.get(filepath.Join(rootfs, rel), func() ([]byte, error) {
		root, err := os.OpenRoot(rootfs)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		return root.ReadFile(rel)
	})
	st.addStat(r.dep)
	if errors.Is(r.err, fs.ErrNotExist) {
		return "", nil
	}
	if r.err != nil {
		return "", fmt.Errorf("image %s: %s: %w", image, p, unwrapPath(r.err))
	}
	return r.data, nil
}

func uniqueField(sep string, index int, input string) string {
	lines := strings.Split(input, "\n")
	out := lines[:0:0]
	seen := map[string]bool{}
	for _, line := range lines {
		if f := strings.Split(line, sep); len(f) > index && index >= 0 && f[index] != "" {
			if seen[f[index]] {
				continue
			}
			seen[f[index]] = true
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func prefixLen(mask string) int {
	ip := net.ParseIP(mask).To4()
	if ip == nil {
		return 0
	}
	ones, _ := net.IPMask(ip).Size()
	return ones
}

func mergeAccounts(base, extra string) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, text := range []string{base, extra} {
		for line := range scanLines(text) {
			name, _, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// scanLines yields the lines of text as a bufio.Scanner splitting lines
// would (a final "\r" dropped, scanning stopped at a line longer than it
// takes), without a scanner's buffer for every call: mergeAccounts runs
// for every node.
func scanLines(text string) iter.Seq[string] {
	return func(yield func(string) bool) {
		if len(text) >= bufio.MaxScanTokenSize {
			sc := bufio.NewScanner(strings.NewReader(text))
			for sc.Scan() {
				if !yield(sc.Text()) {
					return
				}
			}
			return
		}
		for text != "" {
			line, rest, _ := strings.Cut(text, "\n")
			text = rest
			if !yield(strings.TrimSuffix(line, "\r")) {
				return
			}
		}
	}
}

// outputDirs lists the parent directories of p, outermost first.
func outputDirs(p string) []string {
	var dirs []string
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		dirs = append([]string{d}, dirs...)
	}
	return dirs
}
