package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/warewulf-ng/warewulf/internal/archive"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// Rendered is one file a template produced.
type Rendered struct {
	Path     string
	Mode     uint32
	UID, GID uint32
	Link     string // non-empty for a symlink
	Data     []byte
}

// Render renders one template of an overlay for a node, as a build would,
// without writing anything (`wwctl overlay show --render`). A node that is
// not in nodes.conf is, as upstream has it, a node named after the
// controller's host name (its cluster name too), so a template can be
// tried on the controller itself. A template that called abort returns no
// files and ErrAborted with the text it wrote before.
func (b *Builder) Render(db *node.DB, overlayName, file, nodeName string) ([]Rendered, error) {
	return b.renderOne(db, overlayName, file, nodeName, true)
}

// AbortedError is a template that called abort: it writes nothing. Text
// is what it wrote before.
type AbortedError struct {
	Overlay, File string
	Text          []byte
}

func (e *AbortedError) Error() string {
	return fmt.Sprintf("overlay %s, file %s: the template called abort: it writes nothing", e.Overlay, e.File)
}

// RenderShared renders a template that reads no node in particular (such
// as ssh.known_hosts) once, as a build renders it for every node; a
// template that reads the node is an error. `wwctl configure ssh` uses it
// to give the controller the nodes' own known_hosts.
func (b *Builder) RenderShared(db *node.DB, overlayName, file string) ([]Rendered, error) {
	return b.renderOne(db, overlayName, file, "", false)
}

func (b *Builder) renderOne(db *node.DB, overlayName, file, nodeName string, forNode bool) ([]Rendered, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Host keys a render makes are saved into the store a build may be
	// writing: one writer at a time.
	unlock, err := b.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	rel, err := CleanPath(file)
	if err != nil {
		return nil, err
	}
	b.recent = false
	l, err := b.load(overlayName)
	if err != nil {
		return nil, err
	}
	t := findTemplate(l, rel)
	if t == nil && !strings.HasSuffix(rel, TemplateSuffix) {
		// The output's name finds its template too.
		t = findTemplate(l, rel+TemplateSuffix)
	}
	if t == nil {
		if exists(filepath.Join(l.ov.Rootfs(), rel)) {
			return nil, fmt.Errorf("overlay %s: %s is not a template (no %s suffix)", overlayName, rel, TemplateSuffix)
		}
		return nil, fmt.Errorf("overlay %s has no file %s", overlayName, rel)
	}
	v, err := b.view(db, false)
	if err != nil {
		return nil, err
	}
	var n *node.Node
	if forNode {
		if i, ok := v.byName[nodeName]; ok {
			n = v.nodes[i]
		} else {
			n = &node.Node{Name: v.host}
			n.ClusterName = v.host
		}
	}
	rs := newRenderState(b.cfg, b.opts.HostRoot, b.keys, v.nodes, v.views, Data{Cluster: v.ctl.withTime(buildTime())})
	rs.redirect = b.opts.Redirect
	outs, pre, err := rs.renderAll(t, n)
	if errors.Is(err, errNeedsNode) {
		err = fmt.Errorf("overlay %s, file %s reads the node it is rendered for: it has no form shared by all nodes", overlayName, rel)
	}
	if err == nil {
		err = b.keys.save()
	}
	if err != nil {
		return nil, err
	}
	if rs.aborted {
		return nil, &AbortedError{Overlay: overlayName, File: rel, Text: pre}
	}
	res := make([]Rendered, len(outs))
	for i, o := range outs {
		res[i] = Rendered{Path: o.path, Mode: o.mode, UID: o.uid, GID: o.gid, Link: o.link, Data: o.data}
	}
	return res, nil
}

// RenderFile renders a template file outside any overlay for a node, with
// the data and functions of overlay templates (warewulfd's /files/ route
// with ?render). The texts of every file it writes are returned, in order.
func (b *Builder) RenderFile(db *node.DB, path, nodeName string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	unlock, err := b.lock() // a host key made here is saved to the store
	if err != nil {
		return nil, err
	}
	defer unlock()
	e := Entry{Path: filepath.Base(path), Type: archive.TypeReg, Mode: 0o644, Template: true}
	t, err := parseTemplate("files", e, string(data))
	if err != nil {
		return nil, err
	}
	v, err := b.view(db, false)
	if err != nil {
		return nil, err
	}
	i, ok := v.byName[nodeName]
	if !ok {
		return nil, fmt.Errorf("node %q does not exist", nodeName)
	}
	rs := newRenderState(b.cfg, b.opts.HostRoot, b.keys, v.nodes, v.views, Data{Cluster: v.ctl.withTime(buildTime())})
	outs, pre, err := rs.renderAll(t, v.nodes[i])
	if err == nil {
		err = b.keys.save()
	}
	if err != nil {
		return nil, err
	}
	if rs.aborted {
		return pre, nil
	}
	var out []byte
	for _, o := range outs {
		if o.secret {
			// /files/ checks no source address: secrets go by the runtime overlay.
			return nil, fmt.Errorf("%s: %s is marked secret", path, o.path)
		}
		out = append(out, o.data...)
	}
	return out, nil
}

func findTemplate(l *loadedOverlay, rel string) *parsedTemplate {
	for _, pt := range l.templates {
		if pt.src == rel {
			return pt
		}
	}
	return nil
}
