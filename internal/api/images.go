package api

import (
	"context"
	"net/http"
	"os"

	"github.com/warewulf-ng/warewulf/internal/image"
	"github.com/warewulf-ng/warewulf/internal/node"
)

func (s *Server) imageRoutes() {
	s.handle("GET /api/images", s.images)
	s.handle("GET /api/images/{$}", s.images)
	s.handle("GET /api/images/{name}", s.oneImage)
	s.handle("POST /api/images/{name}/build", s.buildImage)
	s.handle("PATCH /api/images/{name}", s.renameImage)
	s.handle("DELETE /api/images/{name}", s.deleteImage)
}

// imageInfo is an image as upstream's API shows it: its kernels, the size
// of its built image, the build time (Unix seconds) and whether it may be
// changed.
type imageInfo struct {
	Kernels   []string `json:"kernels"`
	Size      int64    `json:"size"`
	BuildTime int64    `json:"buildtime"`
	Writable  bool     `json:"writable"`
}

func (s *Server) info(name string) (*imageInfo, error) {
	cfg := s.Config()
	if err := image.ValidName(name); err != nil {
		return nil, invalid("%v", err)
	}
	if !image.Exists(cfg, name) {
		return nil, notFound("image '%s' does not exist", name)
	}
	out := &imageInfo{Kernels: []string{}, Writable: true}
	if ks, err := image.FindKernels(cfg.ImageRootfs(name)); err == nil {
		for _, k := range ks {
			out.Kernels = append(out.Kernels, k.Version)
		}
	}
	if bi, err := image.ReadBuildInfo(cfg, name); err == nil {
		out.Size, out.BuildTime = bi.ImageSize, bi.Built.Unix()
	}
	if st, err := os.Stat(cfg.ImageRootfs(name)); err == nil {
		out.Writable = st.Mode().Perm()&0o200 != 0
	}
	return out, nil
}

func (s *Server) images(r *http.Request) (any, error) {
	names, err := image.List(s.Config())
	if err != nil {
		return nil, err
	}
	out := map[string]*imageInfo{}
	for _, n := range names {
		if out[n], err = s.info(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Server) oneImage(r *http.Request) (any, error) { return s.info(r.PathValue("name")) }

func (s *Server) buildImage(r *http.Request) (any, error) {
	name := r.PathValue("name")
	if _, err := s.info(name); err != nil {
		return nil, err
	}
	if _, err := image.Build(context.WithoutCancel(r.Context()), s.Config(), name, image.BuildOptions{Force: truthy(r, "force")}); err != nil {
		return nil, err
	}
	if truthy(r, "default") {
		// The default profile boots the image, as upstream's ?default=true.
		err := s.update(func(db *node.DB) error {
			p := kind{"profiles", true}.section(db)
			if p["default"] == nil {
				p["default"] = &node.Conf{}
			}
			p["default"].ImageName = name
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return s.info(name)
}

func (s *Server) renameImage(r *http.Request) (any, error) {
	name := r.PathValue("name")
	var b struct {
		Name string `json:"name"`
	}
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	if _, err := s.info(name); err != nil {
		return nil, err
	}
	if b.Name != "" && b.Name != name {
		if err := image.Rename(s.Config(), name, b.Name); err != nil {
			return nil, invalid("%v", err)
		}
		name = b.Name
		if s.Reload != nil {
			s.Reload()
		}
	}
	if truthy(r, "build") {
		if _, err := image.Build(context.WithoutCancel(r.Context()), s.Config(), name, image.BuildOptions{}); err != nil {
			return nil, err
		}
	}
	return s.info(name)
}

func (s *Server) deleteImage(r *http.Request) (any, error) {
	name := r.PathValue("name")
	out, err := s.info(name)
	if err != nil {
		return nil, err
	}
	if err := image.Delete(s.Config(), name, truthy(r, "force")); err != nil {
		return nil, invalid("%v", err)
	}
	return out, nil
}
