package warewulfd

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/archive"
	"github.com/warewulf-ng/warewulf/internal/overlay"
)

// unknownRetry is how long a node that cannot boot yet waits before it
// asks again.
const unknownRetry = 30

// stallTimeout is how long a response may send nothing before it is cut
// (a variable so tests need not wait for it). Only progress counts, not
// rate: on a saturated link every node is slow, and none should fail.
var stallTimeout = time.Minute

// request is one provisioning request on its way through the handler.
type request struct {
	w      *recorder
	r      *http.Request
	start  time.Time
	stage  Stage
	mac    string
	node   *nodeEntry
	remote netip.AddrPort
	why    string // for the log line of a refused request
	note   string // for the log line of a request served with a caveat
	file   string // the file sent, when the route does not say (shim, GRUB)
	// release gives back a paced transfer's slot (pacing.go); nil if none.
	release func()
	paced   *bucket // the bandwidth bucket the body goes through, if any
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isAPI(r.URL.Path) {
		s.api.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		q := newRequest(w, r)
		defer s.finish(q)
		q.w.Header().Set("Allow", "GET, HEAD")
		q.fail(http.StatusMethodNotAllowed, "method "+strconv.Quote(r.Method)+" is not GET or HEAD")
		return
	}
	provisionAlias(r.URL)
	switch r.URL.Path {
	case StatusPath:
		s.serveStatus(w)
		return
	case MetricsPath:
		s.serveMetrics(w)
		return
	}
	if name, ok := strings.CutPrefix(r.URL.Path, EFIPath); ok {
		s.serveEFI(w, r, name)
		return
	}
	if name, ok := strings.CutPrefix(r.URL.Path, FilesPath); ok {
		s.serveFiles(w, r, name)
		return
	}
	if name, ok := strings.CutPrefix(r.URL.Path, EFIBootPath); ok {
		s.serveEFIBoot(w, r, name)
		return
	}
	if name, ok := strings.CutPrefix(r.URL.Path, GrubPath); ok {
		s.serveGrub(w, r, name)
		return
	}
	q := newRequest(w, r)
	defer s.finish(q)

	stage, mac, err := identify(r, q.remote)
	if err != nil {
		q.fail(http.StatusNotFound, err.Error())
		return
	}
	q.stage, q.mac = stage, mac
	st := s.st.Load()
	q.node = st.byMAC[mac]
	want := archive.Compression(r.URL.Query().Get("compress"))
	if want != archive.None && want != archive.Gzip && want != archive.Zstd {
		q.fail(http.StatusBadRequest, fmt.Sprintf("compress=%q is not gz or zstd", want))
		return
	}
	if q.node == nil && stage == StageIpxe {
		if q.node, err = s.discover(mac); err != nil {
			s.log.Errorf("warewulfd: discovery of %s: %v", mac, err)
		}
		st = s.st.Load()
	}
	if stage == StageIpxe {
		if q.node != nil {
			if code, why := checkAssetKey(q.node, r); code != 0 {
				q.fail(code, why)
				return
			}
		}
		s.serveIpxe(st, q)
		return
	}
	if q.node == nil {
		q.fail(http.StatusNotFound, "unknown hwaddr")
		return
	}
	if code, why := checkAssetKey(q.node, r); code != 0 {
		q.fail(code, why)
		return
	}
	if stage == StageStage1 {
		s.serveStage1(st, q)
		return
	}
	// A rebuild replaces files: one found by a lookup may be gone when it
	// is opened. Then the lookup is done again, so a node gets the old
	// bytes or the new ones, never a 404.
	for attempt := 1; ; attempt++ {
		var body *content
		switch stage {
		case StageKernel, StageImage, StageKmods:
			body, err = s.imageFiles(st, q.node, stage)
		case StageInitramfs:
			body, err = s.initramfsFiles(st, q.node)
		case StageSystem:
			body, err = s.overlayFiles(st, q, overlay.System)
		case StageRuntime:
			if why := checkRuntime(st, q); why != "" {
				q.fail(http.StatusForbidden, why)
				return
			}
			body, err = s.overlayFiles(st, q, overlay.Runtime)
		default: // a stage with a route of its own
			q.fail(http.StatusNotFound, "no "+stage.String()+" files on this route")
			return
		}
		if err != nil {
			q.fail(http.StatusNotFound, err.Error())
			return
		}
		if want != archive.None && body.comp != archive.None && want != body.comp {
			// The kernel and wwclient read gzip and zstd alike, so the node
			// still boots; the log says its template asks for the wrong one.
			q.note = fmt.Sprintf("compress=%s asked, sent %s as built", want, body.comp)
		}
		if stage == StageImage || stage == StageKmods || stage == StageInitramfs {
			// Admitted once; a retry after a rebuild only renews the digest.
			admitted := q.release != nil
			if !s.paceAndDigest(st, q, body) {
				return
			}
			if !admitted {
				defer q.release()
			}
		}
		err = s.serveContent(q, body)
		if err == nil {
			return
		}
		s.cache.drop(body)
		if attempt == 3 {
			q.fail(http.StatusNotFound, err.Error())
			return
		}
	}
}

func newRequest(w http.ResponseWriter, r *http.Request) *request {
	q := &request{w: &recorder{ResponseWriter: w}, r: r, start: time.Now(), stage: stageCount}
	q.remote, _ = netip.ParseAddrPort(r.RemoteAddr)
	return q
}

// EFIPath serves the iPXE binaries over HTTP, for UEFI HTTP boot (the
// DHCP server hands out http://server:port/efi/ followed by the `tftp: ipxe` name).
const EFIPath = "/efi/"

// serveEFI sends an iPXE binary from the iPXE source directory, the files
// TFTP serves, under the same name rules.
func (s *Server) serveEFI(w http.ResponseWriter, r *http.Request, name string) {
	start, rec := time.Now(), &recorder{ResponseWriter: w}
	why := ""
	defer func() {
		s.metrics.observe(stageCount, rec.bytes, rec.status)
		s.log.WithFields(logrus.Fields{"file": clip(name), "ip": r.RemoteAddr, "status": rec.status, "bytes": rec.bytes,
			"duration": time.Since(start).Round(time.Microsecond).String()}).Info("efi: " + clip(why))
	}()
	f, err := s.openBootFile(name)
	if err != nil {
		why = err.Error()
		http.Error(rec, http.StatusText(http.StatusNotFound), http.StatusNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		why = err.Error()
		http.Error(rec, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	why = "served"
	rec.Header().Set("Content-Type", "application/efi")
	http.ServeContent(rec, r, "", fi.ModTime(), f)
}

func (s *Server) serveIpxe(st *state, q *request) {
	d := &IpxeData{Hwaddr: q.mac, BaseURL: baseURL(st, q.r), Retry: unknownRetry}
	d.Ipaddr, d.Ipaddr6, d.Port = st.cfg.Ipaddr, st.cfg.Ipaddr6, strconv.Itoa(st.cfg.Warewulf.Port)
	d.Authority = strings.TrimPrefix(d.BaseURL, "http://")
	d.WaitTime, d.TLS = strconv.Itoa(unknownRetry), st.cfg.Warewulf.TLS
	if n := q.node; n != nil {
		d.Id, d.Hostname, d.Fqdn, d.Cluster = n.Name, n.Name, n.Name, n.ClusterName
		d.Ipxe, d.Root, d.Tags = n.IpxeTemplate, n.Root, n.Tags
		d.NetDevs = overlay.NetDevsOf(n.Node)
	}
	tmpl, cacheFor := "unknown", (*nodeEntry)(nil)
	switch n := q.node; {
	case n == nil:
		d.Message = "this node (" + q.mac + ") is not in nodes.conf"
		q.why = "unknown hwaddr"
	case n.ImageName == "" && (n.IpxeTemplate == "" || n.IpxeTemplate == "default"):
		// The shipped default template needs an image; a template of the
		// node's own decides itself, as upstream's do.
		d.Node, d.Name = ipxeNode(n.Node), n.Name
		d.Message = "node " + n.Name + " has no image"
		q.why = "no image"
	default:
		d.Node, d.Name = ipxeNode(n.Node), n.Name
		d.ImageName = n.ImageName
		d.KernelArgs = n.KernelArgs()
		if n.Kernel != nil {
			d.KernelVersion = n.Kernel.Version
		}
		d.Runtime = !st.cfg.Warewulf.Secure && !st.cfg.Warewulf.TLS // iPXE cannot do the checks
		d.Compression = string(archive.Gzip)
		if img, err := s.imageFiles(st, n, StageImage); err == nil && img.comp != archive.None {
			d.Compression = string(img.comp)
		}
		tmpl, cacheFor = n.IpxeTemplate, n
	}
	script, err := s.ipxe.render(st.cfg.IpxeTemplateDir(), tmpl, cacheFor, d)
	if err != nil {
		q.fail(http.StatusInternalServerError, err.Error())
		return
	}
	h := q.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(script)))
	q.w.WriteHeader(http.StatusOK)
	if q.r.Method != http.MethodHead {
		q.w.Write(script)
	}
}

// baseURL is how the node reached us: the Host it asked, if it is a plain
// host[:port], else warewulf.conf's address and port.
func baseURL(st *state, r *http.Request) string {
	if ipxeHost(r.Host) {
		return "http://" + r.Host
	}
	return "http://" + st.cfg.Ipaddr + ":" + strconv.Itoa(st.cfg.Warewulf.Port)
}

func (s *Server) imageFiles(st *state, n *nodeEntry, stage Stage) (*content, error) {
	if n.ImageName == "" {
		return nil, errors.New("node has no image")
	}
	kver := ""
	if n.Kernel != nil {
		kver = n.Kernel.Version
	}
	key := "image\x00" + n.ImageName + "\x00" + kver
	cs, ok := s.cache.get(key)
	if !ok {
		a, err := s.prov.Image(st.cfg, n.ImageName, kver)
		if err != nil {
			return nil, err
		}
		for _, p := range []string{a.Kernel, a.Image, a.Kmods} {
			if p != "" && !within(p, st.cfg.ProvisionDir(), st.cfg.ImageStoreDir()) {
				return nil, fmt.Errorf("%s is outside the provision tree", p)
			}
		}
		cs = s.cache.put(key, &content{paths: []string{a.Kernel}},
			&content{paths: []string{a.Image}, comp: a.Compression},
			&content{paths: []string{a.Kmods}, comp: a.Compression})
	}
	c := cs[stage-StageKernel]
	if c.paths[0] == "" {
		return nil, fmt.Errorf("image %s has no %s", n.ImageName, stage)
	}
	return c, nil
}

// overlayFiles finds a node's built overlay; a missing or stale one is
// built once, however many requests ask at the same time, when
// `autobuild overlays` is on. If that build fails, the node keeps its
// previous overlay (with a warning) and the build is not tried again for
// this nodes.conf.
func (s *Server) overlayFiles(st *state, q *request, kind string) (*content, error) {
	n := q.node
	key := kind + "\x00" + n.Name
	if cs, ok := s.cache.get(key); ok {
		return cs[0], nil
	}
	files, err := s.prov.Overlay(st.cfg, n.Name, kind)
	if checked, _ := s.checked.Load(key); st.cfg.Warewulf.AutobuildOverlays && (err != nil || checked != st.gen) {
		// Missing, or not yet checked against this nodes.conf: BuildNode
		// rebuilds only if the node's inputs changed.
		_, berr, _ := s.builds.Do(key, func() (any, error) {
			s.log.Debugf("warewulfd: bringing %s overlay of %s up to date", kind, n.Name)
			err := s.prov.BuildOverlay(st.cfg, st.db, n.Name, kind)
			s.checked.Store(key, st.gen)
			if err != nil {
				s.log.Warnf("warewulfd: building the %s overlay of %s failed: %v", kind, n.Name, err)
			}
			return nil, err
		})
		switch {
		case berr == nil:
			files, err = s.prov.Overlay(st.cfg, n.Name, kind)
		case err == nil:
			q.note = "the overlay build failed, sent the previous overlay"
		default:
			err = fmt.Errorf("%w (and the last build failed: %v)", err, berr)
		}
	}
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s overlay of %s is empty", kind, n.Name)
	}
	for _, f := range files {
		if !within(f, st.cfg.ProvisionDir()) {
			return nil, fmt.Errorf("%s is outside the provision tree", f)
		}
	}
	return s.cache.put(key, &content{paths: files, comp: archive.Gzip})[0], nil
}

// serveContent sends a body with Range, ETag and Last-Modified: from
// memory when it is small, else from its files through sendfile. If a file
// is gone (a rebuild replaced it) it answers nothing and returns the error,
// for the caller to look the files up again.
func (s *Server) serveContent(q *request, c *content) error {
	h := q.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	var w http.ResponseWriter = q.w
	if q.paced != nil { // an image under a bandwidth budget (pacing.go)
		w = pacedWriter{q.w, q.paced, q.r.Context()}
	}
	if c.data != nil && c.fresh() {
		h.Set("ETag", c.etag)
		http.ServeContent(w, q.r, "", c.mod, &memReader{data: c.data})
		return nil
	}
	files, size, mod, etag, err := openFiles(c.paths)
	if err != nil {
		return err
	}
	defer closeAll(files)
	tc, _ := q.r.Context().Value(connKey{}).(*net.TCPConn)
	q.w.stallAfter(stallTimeout, tc)
	defer q.w.lift()
	h.Set("ETag", etag)
	if size >= bigTransfer && q.r.Method != http.MethodHead {
		defer s.sndbufs.lend(q.r.Context())()
	}
	if len(files) == 1 {
		http.ServeContent(w, q.r, "", mod, files[0])
		return nil
	}
	m, err := newMultiFile(files)
	if err != nil {
		q.fail(http.StatusInternalServerError, err.Error())
		return nil
	}
	http.ServeContent(w, q.r, "", mod, m)
	return nil
}

// logClip is as much of a client's path as a log line repeats: a refused
// 20 KB name must not cost 20 KB of log per request.
const logClip = 200

// clip cuts s, which may come from a client, to logClip bytes and says
// how long it was.
func clip(s string) string {
	if len(s) <= logClip {
		return s
	}
	return strings.ToValidUTF8(s[:logClip], "") + fmt.Sprintf("... (%d bytes)", len(s))
}

// fail answers with an error status and remembers why for the log line.
func (q *request) fail(code int, why string) {
	q.why = why
	http.Error(q.w, http.StatusText(code), code)
}

// finish writes the request's log line, counts it, and records the node's
// progress.
func (s *Server) finish(q *request) {
	status := q.w.status
	if status == 0 {
		status = http.StatusOK
	}
	s.metrics.observe(q.stage, q.w.bytes, status)
	if want := q.w.expected(q.r); q.w.bytes < want {
		// Cut: the client went away, or sent nothing back for stallTimeout.
		q.why = fmt.Sprintf("cut after %d of %d bytes", q.w.bytes, want)
		if q.w.err != nil {
			q.why += ": " + q.w.err.Error()
		}
		s.metrics.errors[min(q.stage, stageCount)].Add(1)
	}
	name := "-"
	if q.node != nil {
		name = q.node.Name
		if status < 400 && q.why == "" {
			s.status.record(name, q.stage, q.remote.Addr().Unmap().String(), q.start)
		}
	}
	if !s.log.IsLevelEnabled(logrus.InfoLevel) && status < 400 {
		return
	}
	f := logrus.Fields{
		"node":     name,
		"stage":    q.stage.String(),
		"hwaddr":   q.mac,
		"ip":       q.remote.Addr().Unmap().String(),
		"status":   status,
		"bytes":    q.w.bytes,
		"duration": time.Since(q.start).Round(time.Microsecond).String(),
	}
	if q.stage == stageCount {
		f["path"] = clip(q.r.URL.Path)
	}
	q.why = clip(q.why)
	if q.file != "" {
		f["file"] = clip(q.file)
	}
	if status >= 400 && q.why == "" {
		// Refused by net/http's ServeContent: a range past the end (416)
		// or a failed If-Match precondition (412).
		q.why = strings.ToLower(http.StatusText(status))
		if r := q.r.Header.Get("Range"); r != "" && status == http.StatusRequestedRangeNotSatisfiable {
			q.why += ": " + strconv.Quote(r)
		}
	}
	e := s.log.WithFields(f)
	switch {
	case status == http.StatusForbidden, status == http.StatusUnauthorized:
		e.Warn("refused: " + q.why)
	case status >= 500:
		e.Error("failed: " + q.why)
	case status >= 400 && q.node != nil: // a known node cannot boot
		e.Warn("failed: " + q.why)
	case status >= 400:
		e.Info("failed: " + q.why)
	case strings.HasPrefix(q.why, "cut after"):
		e.Warn("failed: " + q.why)
	case q.why != "":
		e.Info("not booted: " + q.why)
	case q.note != "":
		e.Warn("served: " + q.note)
	default:
		e.Info("served")
	}
}
