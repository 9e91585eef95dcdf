package api

import (
	"errors"
	"net/http"
	"os"
	"sort"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/warewulf-ng/warewulf/internal/image"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
)

func (s *Server) routes() {
	for _, k := range []kind{{"nodes", false}, {"profiles", true}} {
		base := Prefix + k.plural
		s.handle("GET "+base, s.list(k))
		s.handle("GET "+base+"/{$}", s.list(k))
		s.handle("GET "+base+"/{id}", s.get(k))
		s.handle("PUT "+base+"/{id}", s.put(k))
		s.handle("PATCH "+base+"/{id}", s.patch(k))
		s.handle("DELETE "+base+"/{id}", s.del(k))
	}
	s.handle("GET /api/nodes/{id}/raw", s.raw)
	s.handle("GET /api/nodes/{id}/overlays", s.nodeOverlays)
	s.handle("POST /api/nodes/overlays/build", s.buildOverlays)
	s.handle("POST /api/nodes/{id}/overlays/build", s.buildOverlays)
	s.imageRoutes()
	s.overlayRoutes()
	s.mux.HandleFunc("GET /api/docs", serveDocs)
	s.mux.HandleFunc("GET /api/docs/{$}", serveDocs)
	s.mux.HandleFunc("GET /api/openapi.json", serveDocs)
}

// kind is nodes or profiles: the same calls on either section.
type kind struct {
	plural  string
	profile bool
}

func (k kind) section(db *node.DB) map[string]*node.Conf {
	if k.profile {
		if db.Profiles == nil {
			db.Profiles = map[string]*node.Conf{}
		}
		return db.Profiles
	}
	if db.Nodes == nil {
		db.Nodes = map[string]*node.Conf{}
	}
	return db.Nodes
}

func (k kind) noun() string {
	if k.profile {
		return "profile"
	}
	return "node"
}

func (s *Server) load() (*node.DB, error) { return node.Load(s.Config().NodesConf()) }

// update is every write: wwctl's locked read-modify-write of nodes.conf.
func (s *Server) update(change func(*node.DB) error) error {
	err := node.Update(s.Config().NodesConf(), change)
	var ae *apiError
	if err != nil && !errors.As(err, &ae) {
		err = invalid("%v", err) // validation: the value is named in the message
	}
	if err == nil && s.Reload != nil {
		s.Reload()
	}
	return err
}

// merged is a record as `wwctl node list -o json` prints it: profiles
// merged in for a node, a profile as it is.
func merged(db *node.DB, k kind, id string) (map[string]any, error) {
	var n *node.Node
	var err error
	if k.profile {
		n, err = db.MergedProfile(id)
	} else {
		n, err = db.Merged(id)
	}
	if err != nil {
		return nil, notFound("%v", err)
	}
	return n.Conf.Map(), nil
}

func (s *Server) list(k kind) handler {
	return func(r *http.Request) (any, error) {
		db, err := s.load()
		if err != nil {
			return nil, err
		}
		out := map[string]any{}
		for id := range k.section(db) {
			if out[id], err = merged(db, k, id); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
}

func (s *Server) get(k kind) handler {
	return func(r *http.Request) (any, error) {
		db, err := s.load()
		if err != nil {
			return nil, err
		}
		return merged(db, k, r.PathValue("id"))
	}
}

func (s *Server) raw(r *http.Request) (any, error) {
	db, err := s.load()
	if err != nil {
		return nil, err
	}
	c, ok := db.Nodes[r.PathValue("id")]
	if !ok {
		return nil, notFound("node %q does not exist", r.PathValue("id"))
	}
	return c.Map(), nil
}

// confFromJSON turns a record in JSON, with nodes.conf's keys, into a Conf
// through YAML, so the one codec reads it; a key the model does not know
// is refused, naming it.
func confFromJSON(m map[string]any) (*node.Conf, error) {
	data, err := yaml.Marshal(m)
	if err != nil {
		return nil, invalid("%v", err)
	}
	c := &node.Conf{}
	if err := yaml.Unmarshal(data, c); err != nil {
		return nil, invalid("%v", err)
	}
	for key := range c.Extra {
		return nil, invalid("unknown key %q", key)
	}
	return c, nil
}

// body is what PUT and PATCH send: {"node": {...}} or {"profile": {...}}.
func recordBody(r *http.Request, k kind) (map[string]any, error) {
	var b map[string]map[string]any
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	rec, ok := b[k.noun()]
	if !ok {
		return nil, invalid("the body has no %q object", k.noun())
	}
	if rec == nil {
		rec = map[string]any{}
	}
	return rec, nil
}

// checkRefs refuses a record naming a profile, image or overlay that does
// not exist, as upstream does.
func (s *Server) checkRefs(db *node.DB, c *node.Conf) error {
	cfg := s.Config()
	for _, p := range c.Profiles {
		if _, ok := db.Profiles[p]; !ok {
			return invalid("profile '%s' does not exist", p)
		}
	}
	if c.ImageName != "" && !image.Exists(cfg, c.ImageName) {
		return invalid("image '%s' does not exist", c.ImageName)
	}
	for _, o := range append(append([]string{}, c.SystemOverlay...), c.RuntimeOverlay...) {
		if _, err := overlay.Find(cfg, o); err != nil {
			return invalid("overlay '%s' does not exist", o)
		}
	}
	return nil
}

func (s *Server) put(k kind) handler {
	return func(r *http.Request) (any, error) {
		id := r.PathValue("id")
		if err := node.ValidName(id); err != nil {
			return nil, invalid("%v", err)
		}
		rec, err := recordBody(r, k)
		if err != nil {
			return nil, err
		}
		c, err := confFromJSON(rec)
		if err != nil {
			return nil, err
		}
		err = s.update(func(db *node.DB) error {
			sec := k.section(db)
			if _, ok := sec[id]; ok && r.Header.Get("If-None-Match") == "*" {
				return invalid("%s '%s' already exists", k.noun(), id)
			}
			if err := s.checkRefs(db, c); err != nil {
				return err
			}
			sec[id] = c
			return nil
		})
		if err != nil {
			return nil, err
		}
		return c.Map(), nil
	}
}

// patch sets the fields the body sets, as upstream's merge with
// overwrite: maps merge key by key, anything else replaces, empty values
// change nothing.
func (s *Server) patch(k kind) handler {
	return func(r *http.Request) (any, error) {
		id := r.PathValue("id")
		rec, err := recordBody(r, k)
		if err != nil {
			return nil, err
		}
		set, err := confFromJSON(rec)
		if err != nil {
			return nil, err
		}
		var out *node.Conf
		err = s.update(func(db *node.DB) error {
			sec := k.section(db)
			cur, ok := sec[id]
			if !ok {
				return notFound("%s %q does not exist", k.noun(), id)
			}
			// Only what the body names is checked, as upstream does.
			if err := s.checkRefs(db, set); err != nil {
				return err
			}
			c, err := confFromJSON(mergeOver(cur.Map(), rec))
			if err != nil {
				return err
			}
			sec[id], out = c, c
			return nil
		})
		if err != nil {
			return nil, err
		}
		return out.Map(), nil
	}
}

func mergeOver(dst, src map[string]any) map[string]any {
	for key, v := range src {
		if empty(v) {
			continue
		}
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[key].(map[string]any); ok {
				dst[key] = mergeOver(dm, sm)
				continue
			}
		}
		dst[key] = v
	}
	return dst
}

func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	case bool:
		return !x
	}
	return false
}

func (s *Server) del(k kind) handler {
	return func(r *http.Request) (any, error) {
		id := r.PathValue("id")
		var out map[string]any
		err := s.update(func(db *node.DB) error {
			sec := k.section(db)
			c, ok := sec[id]
			if !ok {
				return notFound("%s %q does not exist", k.noun(), id)
			}
			if k.profile {
				for name, n := range db.Nodes {
					for _, p := range n.Profiles {
						if p == id {
							return invalid("profile '%s' is used by node '%s'", id, name)
						}
					}
				}
			}
			out = c.Map()
			delete(sec, id)
			return nil
		})
		return out, err
	}
}

// overlayInfo is a node's overlay list and when its image was built.
type overlayInfo struct {
	Overlays []string   `json:"overlays,omitempty"`
	MTime    *time.Time `json:"mtime,omitempty"`
}

func (s *Server) nodeOverlays(r *http.Request) (any, error) {
	db, err := s.load()
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	n, err := db.Merged(id)
	if err != nil {
		return nil, notFound("%v", err)
	}
	out := map[string]*overlayInfo{}
	for kind, list := range map[string][]string{overlay.System: n.SystemOverlay, overlay.Runtime: n.RuntimeOverlay} {
		info := &overlayInfo{Overlays: list}
		// Built here, else by upstream (see overlay.UpstreamImage).
		candidates := overlay.UpstreamImages(s.Config().ProvisionDir(), id, kind)
		if parts, err := overlay.Parts(s.Config(), id, kind); err == nil && len(parts) > 0 {
			candidates = append([]string{parts[len(parts)-1]}, candidates...)
		}
		for _, p := range candidates {
			if st, err := os.Stat(p); p != "" && err == nil {
				t := st.ModTime()
				info.MTime = &t
				break
			}
		}
		out[kind+" overlay"] = info
	}
	return out, nil
}

func (s *Server) buildOverlays(r *http.Request) (any, error) {
	db, err := s.load()
	if err != nil {
		return nil, err
	}
	names := db.NodeNames()
	id := r.PathValue("id")
	if id != "" {
		if _, ok := db.Nodes[id]; !ok {
			return nil, notFound("node %q does not exist", id)
		}
		names = []string{id}
	}
	if _, err := overlay.NewBuilder(s.Config(), overlay.Options{}).Build(db, names); err != nil {
		return nil, err
	}
	if id != "" {
		return id, nil
	}
	sort.Strings(names)
	return names, nil
}
