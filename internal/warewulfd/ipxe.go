package warewulfd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/Masterminds/sprig/v3"

	"github.com/warewulf-ng/warewulf/etc"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
)

// IpxeData is what an iPXE template (etc/ipxe/NAME.ipxe) sees.
type IpxeData struct {
	Node          *node.Node // the node, profiles merged (nil for unknown)
	Name          string     // node name
	Hwaddr        string     // the MAC that asked, aa:bb:cc:dd:ee:ff
	BaseURL       string     // http://server:port, as the node reached us
	KernelArgs    string     // the node's kernel command line
	KernelVersion string
	ImageName     string
	Runtime       bool   // load the runtime overlay too (server not in secure mode)
	Compression   string // how the image and kmods are built: gz or zstd
	Message       string // unknown.ipxe: why this node cannot boot now
	Retry         int    // unknown.ipxe: seconds to wait before asking again

	// Upstream Warewulf's names, so a site's iPXE templates render as they
	// do there.
	Id, Hostname, Fqdn string // the node's name
	Cluster            string
	Ipxe               string // the node's iPXE template name
	Ipaddr, Ipaddr6    string // the controller's
	Port               string // warewulfd's
	Authority          string // ipaddr:port (IPv6: [ipaddr6]:port) as the node reached us
	Root               string
	TLS                bool
	WaitTime           string // unknown/unconfigured: seconds to wait before asking again
	Tags               map[string]string
	NetDevs            map[string]*overlay.TNetDev
}

// ipxeFuncs are sprig's functions, as upstream gives iPXE templates, less
// the controller's environment.
var ipxeFuncs = func() template.FuncMap {
	m := sprig.TxtFuncMap()
	delete(m, "env")
	delete(m, "expandenv")
	return m
}()

// templateCache keeps parsed iPXE templates; each file is stat'ed at most
// once a second, so an edit shows without a reload.
type templateCache struct {
	mu sync.Mutex
	m  map[string]*tmplEntry
	// rendered scripts of known nodes, by node, template and base URL; a
	// reload replaces every nodeEntry, an edit every template.
	out map[renderKey][]byte
}

type renderKey struct {
	node *nodeEntry
	tmpl *template.Template
	base string
	comp string // a rebuild may change the image's compression
}

// maxRendered bounds the rendered scripts kept (the base URL comes from
// the client's Host header).
const maxRendered = 100_000

type tmplEntry struct {
	t       *template.Template
	stamp   fileStamp
	checked time.Time
}

func (c *templateCache) clear() {
	c.mu.Lock()
	c.m, c.out = nil, nil
	c.mu.Unlock()
}

// get returns template name from dir, falling back to the one shipped in
// etc/ipxe when the site has none of that name.
func (c *templateCache) get(dir, name string) (*template.Template, error) {
	if name == "" {
		name = "default"
	}
	if strings.ContainsAny(name, `/\`) || !fs.ValidPath(name) {
		return nil, fmt.Errorf("ipxe template %q is not a plain name", name)
	}
	path := filepath.Join(dir, name+".ipxe")
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[path]; ok && now.Sub(e.checked) < time.Second {
		return e.t, nil
	}
	stamp := stampOf(path)
	if e, ok := c.m[path]; ok && e.stamp == stamp {
		e.checked = now
		return e.t, nil
	}
	var data []byte
	var err error
	if stamp.ok {
		data, err = os.ReadFile(path)
	} else {
		data, err = fs.ReadFile(etc.FS, "ipxe/"+name+".ipxe")
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("ipxe template %q: no %s", name, path)
		}
	}
	if err != nil {
		return nil, err
	}
	t, err := template.New(name).Funcs(ipxeFuncs).Parse(string(data))
	if err != nil {
		return nil, fmt.Errorf("ipxe template %s: %w", path, err)
	}
	if c.m == nil {
		c.m = map[string]*tmplEntry{}
	}
	c.m[path] = &tmplEntry{t: t, stamp: stamp, checked: now}
	return t, nil
}

// render executes template name for d. Scripts of known nodes (e set) are
// kept until the node or the template changes.
func (c *templateCache) render(dir, name string, e *nodeEntry, d *IpxeData) ([]byte, error) {
	t, err := c.get(dir, name)
	if err != nil {
		return nil, err
	}
	key := renderKey{e, t, d.BaseURL + " " + d.Authority, d.Compression}
	if e != nil {
		c.mu.Lock()
		out, ok := c.out[key]
		c.mu.Unlock()
		if ok {
			return out, nil
		}
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("ipxe template %s: %w", name, err)
	}
	if e != nil {
		c.mu.Lock()
		if c.out == nil || len(c.out) >= maxRendered {
			c.out = map[renderKey][]byte{}
		}
		c.out[key] = buf.Bytes()
		c.mu.Unlock()
	}
	return buf.Bytes(), nil
}
