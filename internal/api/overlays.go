package api

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/warewulf-ng/warewulf/internal/archive"
	"github.com/warewulf-ng/warewulf/internal/overlay"
	"github.com/warewulf-ng/warewulf/internal/safefile"
)

func (s *Server) overlayRoutes() {
	s.handle("GET /api/overlays", s.overlays)
	s.handle("GET /api/overlays/{$}", s.overlays)
	s.handle("GET /api/overlays/{name}", s.oneOverlay)
	s.handle("PUT /api/overlays/{name}", s.createOverlay)
	s.handle("DELETE /api/overlays/{name}", s.deleteOverlay)
	s.handle("GET /api/overlays/{name}/file", s.overlayFile)
	s.handle("PUT /api/overlays/{name}/file", s.putOverlayFile)
	s.handle("DELETE /api/overlays/{name}/file", s.deleteOverlayFile)
}

// overlayView is an overlay as upstream's API shows it: its files
// ("/etc/hosts.ww") and whether it is a site overlay. An overlay that does
// not exist (after a delete) shows no files; an existing one without
// files shows null, as upstream's does.
type overlayView struct {
	Files []string `json:"files"`
	Site  bool     `json:"site"`
}

func (s *Server) view(name string) *overlayView {
	o, err := overlay.Find(s.Config(), name)
	if err != nil {
		return &overlayView{Files: []string{}}
	}
	v := &overlayView{Site: o.Site}
	if entries, err := overlay.Scan(o); err == nil {
		for _, e := range entries {
			if e.Type != archive.TypeDir {
				v.Files = append(v.Files, "/"+e.Path)
			}
		}
	}
	return v
}

func (s *Server) find(name string) (*overlay.Overlay, error) {
	o, err := overlay.Find(s.Config(), name)
	if err != nil {
		return nil, notFound("%v", err)
	}
	return o, nil
}

func (s *Server) overlays(r *http.Request) (any, error) {
	list, err := overlay.List(s.Config())
	if err != nil {
		return nil, err
	}
	out := map[string]*overlayView{}
	for _, o := range list {
		out[o.Name] = s.view(o.Name)
	}
	return out, nil
}

func (s *Server) oneOverlay(r *http.Request) (any, error) {
	name := r.PathValue("name")
	if _, err := s.find(name); err != nil {
		return nil, err
	}
	return s.view(name), nil
}

func (s *Server) createOverlay(r *http.Request) (any, error) {
	name := r.PathValue("name")
	if _, err := overlay.Find(s.Config(), name); err == nil {
		return nil, conflict("%s overlay already exists", name)
	}
	if _, err := overlay.Create(s.Config(), name); err != nil {
		return nil, invalid("%v", err)
	}
	return s.view(name), nil
}

func (s *Server) deleteOverlay(r *http.Request) (any, error) {
	name := r.PathValue("name")
	o, err := s.find(name)
	if err != nil {
		return nil, err
	}
	if !o.Site {
		return nil, invalid("distribution overlay: %s", name)
	}
	if !truthy(r, "force") {
		db, err := s.load()
		if err != nil {
			return nil, err
		}
		profiles, nodes := db.OverlayUsers(name)
		if len(nodes) > 0 || len(profiles) > 0 {
			return nil, invalid("overlay '%s' is in use by %d nodes and %d profiles", name, len(nodes), len(profiles))
		}
		if v := s.view(name); len(v.Files) > 0 {
			return nil, invalid("overlay '%s' is not empty (force deletes it anyway)", name)
		}
	}
	if err := overlay.Delete(s.Config(), name, ""); err != nil {
		return nil, &apiError{http.StatusConflict, "failed to remove overlay: " + err.Error()}
	}
	v := s.view(name)
	v.Site = true
	return v, nil
}

// overlayFileView is one file of an overlay, rendered for a node with
// ?render=NODE.
type overlayFileView struct {
	Overlay  string      `json:"overlay"`
	Path     string      `json:"path"`
	Contents string      `json:"contents"`
	Perms    os.FileMode `json:"perms"`
	UID      uint32      `json:"uid"`
	GID      uint32      `json:"gid"`
}

func (s *Server) overlayFile(r *http.Request) (any, error) {
	name, file := r.PathValue("name"), r.URL.Query().Get("path")
	if file == "" {
		return nil, invalid("must specify a path")
	}
	o, err := s.find(name)
	if err != nil {
		return nil, err
	}
	rel, err := overlay.CleanPath(file)
	if err != nil {
		return nil, invalid("%v", err)
	}
	p := filepath.Join(o.Rootfs(), filepath.FromSlash(rel))
	st, err := os.Lstat(p)
	if err != nil || !st.Mode().IsRegular() {
		return nil, notFound("overlay %s has no file %s", name, rel)
	}
	out := &overlayFileView{Overlay: name, Path: file, Perms: st.Mode().Perm()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		out.UID, out.GID = sys.Uid, sys.Gid
	}
	node := r.URL.Query().Get("render")
	if node == "" {
		data, err := overlay.ReadFile(s.Config(), name, rel)
		if err != nil {
			return nil, notFound("%v", err)
		}
		out.Contents = string(data)
		return out, nil
	}
	db, err := s.load()
	if err != nil {
		return nil, err
	}
	outs, err := overlay.NewBuilder(s.Config(), overlay.Options{}).Render(db, name, rel, node)
	var aborted *overlay.AbortedError
	if errors.As(err, &aborted) {
		// Nothing would be written; what came before abort is shown.
		out.Contents = string(aborted.Text) + "Aborted\n"
		return out, nil
	}
	if err != nil {
		return nil, invalid("%v", err)
	}
	out.Contents = renderedText(outs, strings.TrimSuffix(rel, overlay.TemplateSuffix))
	return out, nil
}

// renderedText shows what a template wrote, as upstream's API does: one
// file as it is, several with a "Filename:" line before each, a symlink
// as "Symlink: TARGET".
func renderedText(outs []overlay.Rendered, own string) string {
	if len(outs) == 1 && outs[0].Path == own {
		if outs[0].Link != "" {
			return "Symlink: " + outs[0].Link + "\n"
		}
		return string(outs[0].Data)
	}
	var b strings.Builder
	for _, o := range outs {
		b.WriteString("Filename: " + o.Path + "\n")
		if o.Link != "" {
			b.WriteString("Symlink: " + o.Link + "\n")
		} else {
			b.Write(o.Data)
		}
	}
	return b.String()
}

func (s *Server) putOverlayFile(r *http.Request) (any, error) {
	name, file := r.PathValue("name"), r.URL.Query().Get("path")
	if file == "" {
		return nil, invalid("must specify a path")
	}
	var b struct {
		Content *string `json:"content"`
	}
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	if b.Content == nil {
		return nil, invalid("the body has no \"content\"")
	}
	rel, err := overlay.CleanPath(file)
	if err != nil {
		return nil, invalid("%v", err)
	}
	if _, err := overlay.Find(s.Config(), name); err != nil {
		if _, err := overlay.Create(s.Config(), name); err != nil {
			return nil, invalid("%v", err)
		}
	}
	if o, err := s.find(name); err == nil && r.Header.Get("If-None-Match") == "*" {
		if _, err := os.Lstat(filepath.Join(o.Rootfs(), filepath.FromSlash(rel))); err == nil {
			return nil, conflict("overlay %s already has %s", name, rel)
		}
	}
	p, err := overlay.EditPath(s.Config(), name, rel)
	if err != nil {
		return nil, invalid("%v", err)
	}
	if err := safefile.WriteFile(p, []byte(*b.Content), 0o644); err != nil {
		return nil, err
	}
	if err := overlay.CheckTemplate(name, rel, p); err != nil {
		// Kept, as an editor keeps it: the answer says what to fix.
		return nil, invalid("%v", err)
	}
	return s.view(name), nil
}

func (s *Server) deleteOverlayFile(r *http.Request) (any, error) {
	name, file := r.PathValue("name"), r.URL.Query().Get("path")
	if file == "" {
		return nil, invalid("must specify a path")
	}
	if _, err := s.find(name); err != nil {
		return nil, err
	}
	if err := overlay.Delete(s.Config(), name, file); err != nil {
		return nil, invalid("%v", err)
	}
	return s.view(name), nil
}
