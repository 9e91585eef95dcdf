package warewulfd

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/overlay"
)

// FilesPath serves the files directory (`wwfilesdir`) to nodes, as
// upstream does: /files/PATH?wwid=MAC (or the node found by ARP), with the
// node's asset key, from a privileged port under `secure files`; ?render
// renders a .ww template for the node.
const FilesPath = "/files/"

func (s *Server) serveFiles(w http.ResponseWriter, r *http.Request, name string) {
	q := newRequest(w, r)
	st := s.st.Load()
	defer func() {
		status := q.w.status
		if status == 0 {
			status = http.StatusOK
		}
		s.metrics.observe(stageCount, q.w.bytes, status)
		node := "-"
		if q.node != nil {
			node = q.node.Name
		}
		e := s.log.WithFields(logrus.Fields{"node": node, "file": name, "ip": q.remote.Addr().Unmap().String(),
			"status": status, "bytes": q.w.bytes, "duration": time.Since(q.start).Round(time.Microsecond).String()})
		switch {
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			e.Warn("files: refused: " + q.why)
		case status >= 500:
			e.Error("files: failed: " + q.why)
		case status >= 400:
			e.Info("files: failed: " + q.why)
		default:
			e.Info("files: served")
		}
	}()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		q.w.Header().Set("Allow", "GET, HEAD")
		q.fail(http.StatusMethodNotAllowed, "method "+strconv.Quote(r.Method)+" is not GET or HEAD")
		return
	}
	query := r.URL.Query()
	mac, err := requestMAC("", query.Get("wwid"), q.remote)
	if err != nil {
		q.fail(http.StatusUnauthorized, "unable to identify the node: "+err.Error())
		return
	}
	q.mac = mac
	if q.node = st.byMAC[mac]; q.node == nil {
		q.fail(http.StatusUnauthorized, "no node has hwaddr "+mac)
		return
	}
	if secureFiles(st.cfg) && q.remote.Port() >= 1024 {
		q.fail(http.StatusForbidden, "source port "+strconv.Itoa(int(q.remote.Port()))+" is not privileged (secure files wants < 1024)")
		return
	}
	if code, why := checkAssetKey(q.node, r); code != 0 {
		q.fail(code, why)
		return
	}
	dir := st.cfg.FilesDir()
	path, ok := filesPath(dir, name)
	if _, render := query["render"]; render {
		if want := query.Get("render"); want != "" && want != q.node.Name {
			q.fail(http.StatusBadRequest, "render="+strconv.Quote(want)+" is not the node asking, "+q.node.Name)
			return
		}
		if !ok {
			q.fail(http.StatusNotFound, "not in the files directory")
			return
		}
		if !strings.HasSuffix(path, overlay.TemplateSuffix) {
			if regular(path + overlay.TemplateSuffix) {
				path += overlay.TemplateSuffix
			} else if regular(path) {
				q.fail(http.StatusBadRequest, "render wants a "+overlay.TemplateSuffix+" template")
				return
			}
		}
		if !regular(path) {
			q.fail(http.StatusNotFound, "no such template")
			return
		}
		out, err := overlay.NewBuilder(st.cfg, overlay.Options{}).RenderFile(st.db, path, q.node.Name)
		if err != nil {
			q.fail(http.StatusInternalServerError, err.Error())
			return
		}
		q.w.Header().Set("Content-Type", "application/octet-stream")
		q.w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		q.w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			q.w.Write(out)
		}
		return
	}
	if !ok {
		q.fail(http.StatusNotFound, "not in the files directory")
		return
	}
	// O_NONBLOCK: a FIFO planted in the directory must not hang the request.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		q.fail(http.StatusNotFound, "no such file")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		q.fail(http.StatusNotFound, "not a regular file") // directories are not listed
		return
	}
	http.ServeContent(q.w, r, fi.Name(), fi.ModTime(), f)
}

// filesPath resolves a name under /files/ to a path inside dir; ok is
// false when it, or a symbolic link on the way, leaves dir.
func filesPath(dir, name string) (string, bool) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil || name == "" {
		return "", false
	}
	p := filepath.Join(root, filepath.FromSlash(name))
	if !inside(p, root) {
		return "", false
	}
	// The deepest part that exists, links resolved, must stay inside too
	// (render may ask for a name that exists only with the suffix).
	for q := p; ; q = filepath.Dir(q) {
		if real, err := filepath.EvalSymlinks(q); err == nil {
			return p, real == root || inside(real, root)
		}
		if q == root || !inside(q, root) {
			return "", false
		}
	}
}

// inside reports whether p is below root, by name.
func inside(p, root string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// secureFiles is `secure files`, which defaults to `secure`.
func secureFiles(cfg *config.Config) bool {
	if cfg.Warewulf.SecureFiles != nil {
		return *cfg.Warewulf.SecureFiles
	}
	return cfg.Warewulf.Secure
}

func regular(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
