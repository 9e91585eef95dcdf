package warewulfd

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/Masterminds/sprig/v3"
	"github.com/pin/tftp/v3"

	"github.com/warewulf-ng/warewulf/etc"
	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/image"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
)

// The shim + GRUB boot path (warewulf.conf `grubboot: true`, for Secure
// Boot), as upstream Warewulf serves it:
//
//	DHCP  -> warewulf/shim.efi by TFTP, or http://IP:PORT/efiboot/shim.efi
//	shim  -> grubx64.efi from beside itself (TFTP warewulf/, or /efiboot/)
//	GRUB  -> grub.cfg from its prefix: TFTP grub/grub.cfg (a chain to
//	         warewulf/grub/MAC), HTTP /grub/grub.cfg-01-MAC, /grub/grub.cfg
//	         or /efiboot/grub.cfg
//	grub.cfg (SYSCONFDIR/grub/grub.cfg.ww, per node) -> kernel, image,
//	         kmods, system, runtime: the files iPXE loads, by the transport
//	         GRUB came by.
//
// A GRUB that came by TFTP fetches everything by TFTP, as warewulf/STAGE/
// MAC?assetkey=KEY: Debian's signed grubnetx64.efi has no http module and,
// under Secure Boot, loads none.
//
// shim and GRUB come from the node's image, whose signed kernel they must
// trust, else from the controller (image.OpenBootloader).

// EFIBootPath is upstream's route for shim, GRUB and grub.cfg over HTTP;
// the node is named by ?wwid=MAC or found by its address.
const EFIBootPath = "/efiboot/"

// GrubPath serves each node's grub.cfg: /grub/MAC.
const GrubPath = "/grub/"

// GrubCfgName is the file GRUB reads from its prefix directory.
const GrubCfgName = "grub.cfg"

// TFTPGrubDir holds the loaders and GRUB's first config over TFTP, under
// upstream's names: warewulf/shim.efi, warewulf/grubx64.efi.
const TFTPGrubDir = "warewulf/"

// arpFile is the kernel's neighbour table, to find the MAC of a request
// that names none (a variable for tests).
var arpFile = "/proc/net/arp"

// GrubData is what grub.cfg.ww sees: upstream's template variables.
type GrubData struct {
	Message       string
	WaitTime      string
	Hostname      string
	Fqdn          string
	Id            string //nolint:revive // upstream's name
	Cluster       string
	ImageName     string
	Ipxe          string
	Hwaddr        string
	Ipaddr        string
	Ipaddr6       string
	Port          string
	Authority     string // IP:PORT the node reaches warewulfd at ([IPv6]:PORT over IPv6)
	KernelArgs    string
	KernelVersion string
	Root          string
	TLS           bool
	Tags          map[string]string
	NetDevs       map[string]*node.NetDev
	// The project's additions, as in the iPXE templates:
	Runtime     bool   // load the runtime overlay too (server not in secure mode)
	Compression string // how the image and kmods are built: gz or zstd
	// BaseURI is where this GRUB fetches the rest, STAGE/MAC below it:
	// (http,IP:PORT) when grub.cfg came by HTTP, (tftp,IP)/warewulf when
	// it came by TFTP.
	BaseURI string
}

// loaderOf maps an /efiboot/ or TFTP file name to the loader and the
// architecture it names; arch is "" when the name does not say.
func loaderOf(name string) (l image.Loader, arch string, ok bool) {
	switch name {
	case "shim.efi":
		return image.Shim, "", true
	case "shimx64.efi":
		return image.Shim, image.ArchX86_64, true
	case "shimaa64.efi":
		return image.Shim, image.ArchAarch64, true
	case "grub.efi", "grub-tpm.efi":
		return image.Grub, "", true
	case "grubx64.efi":
		return image.Grub, image.ArchX86_64, true
	case "grubaa64.efi":
		return image.Grub, image.ArchAarch64, true
	}
	return "", "", false
}

// serveEFIBoot answers /efiboot/NAME: shim, GRUB or the node's grub.cfg.
func (s *Server) serveEFIBoot(w http.ResponseWriter, r *http.Request, name string) {
	q := newRequest(w, r)
	q.stage = StageEFIBoot
	defer s.finish(q)
	// shim asks for GRUB as /efiboot//grubx64.efi.
	name = strings.TrimLeft(name, "/")
	st := s.st.Load()
	q.mac, q.node = s.identify(st, r, q.remote)
	l, arch, isLoader := loaderOf(name)
	if !isLoader && name != GrubCfgName {
		q.fail(http.StatusNotFound, fmt.Sprintf("no efiboot file %q", name))
		return
	}
	if q.node != nil && !assetKeyOK(q.node, r) {
		q.fail(http.StatusUnauthorized, "asset key does not match")
		return
	}
	if name == GrubCfgName {
		if q.node == nil {
			q.fail(http.StatusNotFound, "unknown node: no wwid= and no neighbour entry for "+q.remote.Addr().Unmap().String())
			return
		}
		s.serveGrubCfg(st, q)
		return
	}
	s.serveLoader(st, q, l, arch)
}

// serveLoader sends shim or GRUB from the node's image, or the
// controller's for a node that is unknown or has no image.
func (s *Server) serveLoader(st *state, q *request, l image.Loader, arch string) {
	img := ""
	if q.node != nil {
		img = q.node.ImageName
	}
	f, from, err := openLoader(st.cfg, img, l, arch)
	if err != nil {
		q.fail(http.StatusNotFound, err.Error())
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		q.fail(http.StatusInternalServerError, err.Error())
		return
	}
	q.file = from
	q.w.Header().Set("Content-Type", "application/efi")
	http.ServeContent(q.w, q.r, "", fi.ModTime(), f)
}

// openLoader finds a loader for an image; a name that does not say the
// architecture gets the image's (from its platform), else x86_64.
func openLoader(cfg *config.Config, img string, l image.Loader, arch string) (*os.File, string, error) {
	if arch == "" {
		arch = image.ArchX86_64
		if img != "" {
			if m, err := image.ReadMeta(cfg, img); err == nil && strings.HasSuffix(m.Platform, "arm64") {
				arch = image.ArchAarch64
			}
		}
	}
	return image.OpenBootloader(cfg, img, l, arch)
}

// serveGrub answers /grub/MAC with the node's grub.cfg. GRUB's own
// searches under its prefix land here too: grub.cfg-01-MAC is that node's
// config, grub.cfg the chain that asks for /grub/${net_default_mac}.
func (s *Server) serveGrub(w http.ResponseWriter, r *http.Request, name string) {
	q := newRequest(w, r)
	q.stage = StageGrub
	defer s.finish(q)
	st := s.st.Load()
	switch {
	case name == GrubCfgName:
		s.writeText(q, grubChain(st.cfg, q.remote.Addr(), false))
		return
	case strings.HasPrefix(name, GrubCfgName+"-01-"):
		name = strings.TrimPrefix(name, GrubCfgName+"-01-")
	case strings.HasPrefix(name, GrubCfgName+"-"):
		q.fail(http.StatusNotFound, "only grub.cfg-01-MAC is served")
		return
	}
	mac, err := ParseMAC(name)
	if err != nil {
		q.fail(http.StatusNotFound, err.Error())
		return
	}
	q.mac, q.node = mac, st.byMAC[mac]
	if q.node == nil {
		if q.node, err = s.discover(mac); err != nil {
			s.log.Errorf("warewulfd: discovery of %s: %v", mac, err)
		}
		st = s.st.Load()
	}
	if q.node == nil {
		q.fail(http.StatusNotFound, "unknown hwaddr")
		return
	}
	if !assetKeyOK(q.node, r) {
		q.fail(http.StatusUnauthorized, "asset key does not match")
		return
	}
	s.serveGrubCfg(st, q)
}

// serveGrubCfg renders the grub.cfg template for q's node.
func (s *Server) serveGrubCfg(st *state, q *request) {
	d := grubData(st.cfg, q.node, q.mac, q.remote.Addr())
	d.BaseURI = "(http," + d.Authority + ")"
	out, err := renderGrub(st.cfg, d)
	if err != nil {
		q.fail(http.StatusInternalServerError, err.Error())
		return
	}
	s.writeText(q, out)
}

func (s *Server) writeText(q *request, b []byte) {
	h := q.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	q.w.WriteHeader(http.StatusOK)
	if q.r.Method != http.MethodHead {
		q.w.Write(b)
	}
}

// grubData fills upstream's template variables for node n, asked for
// as mac from remote.
func grubData(cfg *config.Config, n *nodeEntry, mac string, remote netip.Addr) *GrubData {
	d := &GrubData{
		Id: n.Name, Hostname: n.Name, Fqdn: n.Name, Cluster: n.ClusterName,
		ImageName: n.ImageName, Ipxe: n.IpxeTemplate, Hwaddr: mac,
		Ipaddr: cfg.Ipaddr, Port: strconv.Itoa(cfg.Warewulf.Port),
		KernelArgs: n.KernelArgs(), Root: n.Root, Tags: n.Tags, NetDevs: n.NetDevs,
		Runtime: !cfg.Warewulf.Secure, Compression: "gz",
	}
	if a, err := netip.ParseAddr(cfg.Ipaddr6); err == nil {
		d.Ipaddr6 = a.String()
	}
	d.Authority = authority(cfg, remote)
	if n.Kernel != nil {
		d.KernelVersion = n.Kernel.Version
	}
	if n.ImageName != "" {
		if a, err := image.BuiltArtifacts(cfg, n.ImageName, d.KernelVersion); err == nil {
			d.KernelVersion = a.KernelVersion
			if a.Compression != "" {
				d.Compression = string(a.Compression)
			}
		}
	}
	if d.Tags == nil {
		d.Tags = map[string]string{}
	}
	return d
}

// authority is the controller's address and port as a node at remote
// reaches it: over IPv6, ipaddr6 in brackets.
func authority(cfg *config.Config, remote netip.Addr) string {
	port := strconv.Itoa(cfg.Warewulf.Port)
	if remote.IsValid() && remote.Is6() && !remote.Is4In6() {
		if a, err := netip.ParseAddr(cfg.Ipaddr6); err == nil {
			return "[" + a.String() + "]:" + port
		}
	}
	return cfg.Ipaddr + ":" + port
}

// renderGrub executes the site's grub.cfg.ww, or the shipped one when the
// site has none, with sprig's functions as upstream does.
func renderGrub(cfg *config.Config, d *GrubData) ([]byte, error) {
	file := cfg.GrubTemplate()
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = fs.ReadFile(etc.FS, "grub/grub.cfg.ww")
	}
	if err != nil {
		return nil, err
	}
	t, err := template.New("grub.cfg.ww").Funcs(sprig.TxtFuncMap()).Parse(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return buf.Bytes(), nil
}

// GrubChain is the first grub.cfg for a TFTP server other than
// warewulfd's: it goes on over HTTP (`wwctl configure tftp`).
func GrubChain(cfg *config.Config) []byte { return grubChain(cfg, netip.Addr{}, false) }

// grubChain is the grub.cfg that GRUB finds first, the same for every
// node: it reads the asset tag and asks for the node's own config by its
// MAC, by the transport it came by.
func grubChain(cfg *config.Config, remote netip.Addr, overTFTP bool) []byte {
	src := "(http," + authority(cfg, remote) + ")" + GrubPath
	if overTFTP {
		src = "(tftp," + cfg.Ipaddr + ")/" + TFTPGrubDir + "grub/"
	}
	return []byte(`# warewulfd: the first grub.cfg, the same for every node
smbios --type 3 --get-string 8 --set assetkey
configfile "` + src + `${net_default_mac}?assetkey=${assetkey}"
`)
}

// assetKeyOK checks a node's asset key, when it has one, against the
// request's assetkey= (upstream answers a mismatch with 401).
func assetKeyOK(n *nodeEntry, r *http.Request) bool {
	if n.AssetKey == "" {
		return true
	}
	got := r.URL.Query().Get("assetkey")
	return subtle.ConstantTimeCompare([]byte(got), []byte(n.AssetKey)) == 1
}

// identify finds the node of a request that names none in its path:
// ?wwid=MAC, else the MAC the kernel's neighbour table has for its
// address, else the node configured with that address.
func (s *Server) identify(st *state, r *http.Request, remote netip.AddrPort) (string, *nodeEntry) {
	if w := r.URL.Query().Get("wwid"); w != "" {
		mac, err := ParseMAC(w)
		if err != nil {
			return "", nil
		}
		return mac, st.byMAC[mac]
	}
	return s.nodeByAddr(st, remote.Addr())
}

// nodeByAddr finds a node by a source address (HTTP or TFTP).
func (s *Server) nodeByAddr(st *state, ip netip.Addr) (string, *nodeEntry) {
	if !ip.IsValid() {
		return "", nil
	}
	ip = ip.Unmap()
	if mac := arpLookup(ip); mac != "" {
		if n := st.byMAC[mac]; n != nil {
			return mac, n
		}
		if n := s.nodeWithAddr(st, ip); n != nil {
			return mac, n
		}
		return mac, nil
	}
	if n := s.nodeWithAddr(st, ip); n != nil {
		_, d := n.Primary()
		if d != nil {
			if mac, err := ParseMAC(d.Hwaddr); err == nil {
				return mac, n
			}
		}
		return "", n
	}
	return "", nil
}

func (s *Server) nodeWithAddr(st *state, ip netip.Addr) *nodeEntry {
	for _, n := range st.nodes {
		if n.hasAddr(ip) {
			return n
		}
	}
	return nil
}

// arpLookup returns the MAC of ip in the kernel's IPv4 neighbour table, or
// "".
func arpLookup(ip netip.Addr) string {
	ip = ip.Unmap() // a dual-stack listener sees ::ffff:a.b.c.d
	if !ip.Is4() {
		return ""
	}
	data, err := os.ReadFile(arpFile)
	if err != nil {
		return ""
	}
	want := ip.String()
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		// IP address, HW type, Flags, HW address, Mask, Device; flags 0x0
		// is an incomplete entry.
		if len(f) >= 4 && f[0] == want && f[2] != "0x0" {
			if mac, err := ParseMAC(f[3]); err == nil && mac != "00:00:00:00:00:00" {
				return mac
			}
		}
	}
	return ""
}

// tftpGrub serves the GRUB path's TFTP names, and reports false for
// names it does not serve:
//   - warewulf/shim.efi, warewulf/grubx64.efi (and the other loader names),
//     from the image of the node at the peer's address;
//   - grub/grub.cfg (Debian's GRUB prefix) and warewulf/grub.cfg (beside
//     the loader): the chain to warewulf/grub/MAC;
//   - warewulf/STAGE/MAC?assetkey=KEY: the node's grub.cfg, kernel,
//     image, kmods and overlays, as over HTTP. TFTP offers no privileged
//     port, so the runtime overlay goes this way only outside secure mode.
func (s *Server) tftpGrub(name string, rf io.ReaderFrom) (bool, error) {
	ok, err := s.tftpGrubServe(name, rf)
	if ok && err != nil {
		// The reason is for the log; the client learns only "refused"
		// (it may hold the controller's paths).
		peer := ""
		if ot, isOT := rf.(tftp.OutgoingTransfer); isOT {
			a := ot.RemoteAddr()
			peer = a.String()
		}
		s.log.WithFields(map[string]any{"file": tftpLogName(name), "peer": peer}).Warnf("tftp: %v", err)
		return true, errTFTPLogged
	}
	return ok, err
}

// errTFTPLogged is the TFTP error of a transfer whose reason is already
// logged.
var errTFTPLogged = errors.New("refused")

// tftpGrubServe is tftpGrub with the reason of a refusal in its error.
func (s *Server) tftpGrubServe(name string, rf io.ReaderFrom) (bool, error) {
	name, rawQuery, _ := strings.Cut(strings.TrimPrefix(name, "/"), "?")
	var peer netip.Addr
	ot, _ := rf.(tftp.OutgoingTransfer)
	if ot != nil {
		a := ot.RemoteAddr()
		peer, _ = netip.AddrFromSlice(a.IP)
		peer = peer.Unmap()
	}
	send := func(r io.Reader, size int64) (bool, error) {
		if ot != nil {
			ot.SetSize(size)
		}
		_, err := rf.ReadFrom(r)
		return true, err
	}
	st := s.st.Load()
	dir, base := path.Split(name)
	switch {
	case (dir == TFTPGrubDir || dir == "grub/") && base == GrubCfgName:
		b := grubChain(st.cfg, peer, true)
		return send(bytes.NewReader(b), int64(len(b)))
	case dir == TFTPGrubDir:
		l, arch, ok := loaderOf(base)
		if !ok {
			return false, nil
		}
		img := ""
		if _, n := s.nodeByAddr(st, peer); n != nil {
			img = n.ImageName
		}
		f, from, err := openLoader(st.cfg, img, l, arch)
		if err != nil {
			return true, err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return true, err
		}
		s.log.Debugf("tftp: %s for %s (image %q) is %s", name, peer, img, from)
		return send(f, fi.Size())
	case !strings.HasPrefix(name, TFTPGrubDir):
		return false, nil
	}
	stage, mac, err := ParsePath(strings.TrimPrefix(name, TFTPGrubDir[:len(TFTPGrubDir)-1]))
	if err != nil || stage == StageIpxe || stage == StageEFIBoot {
		return false, nil
	}
	n := st.byMAC[mac]
	if n == nil {
		return true, fmt.Errorf("unknown hwaddr %s", mac)
	}
	q, _ := url.ParseQuery(rawQuery)
	if n.AssetKey != "" && subtle.ConstantTimeCompare([]byte(q.Get("assetkey")), []byte(n.AssetKey)) != 1 {
		return true, fmt.Errorf("node %s: asset key does not match", n.Name)
	}
	var c *content
	switch stage {
	case StageGrub:
		d := grubData(st.cfg, n, mac, peer)
		d.BaseURI = "(tftp," + st.cfg.Ipaddr + ")/" + strings.TrimSuffix(TFTPGrubDir, "/")
		b, err := renderGrub(st.cfg, d)
		if err != nil {
			return true, err
		}
		s.status.record(n.Name, stage, peer.String(), time.Now())
		return send(bytes.NewReader(b), int64(len(b)))
	case StageKernel, StageImage, StageKmods:
		c, err = s.imageFiles(st, n, stage)
	case StageSystem:
		c, err = s.overlayFiles(st, &request{node: n}, overlay.System)
	case StageRuntime:
		if st.cfg.Warewulf.Secure {
			return true, fmt.Errorf("node %s: the runtime overlay goes only to a privileged port in secure mode, never by TFTP", n.Name)
		}
		c, err = s.overlayFiles(st, &request{node: n}, overlay.Runtime)
	}
	if err != nil {
		return true, err
	}
	files, size, _, _, err := openFiles(c.paths)
	if err != nil {
		return true, err
	}
	defer closeAll(files)
	readers := make([]io.Reader, len(files))
	for i, f := range files {
		readers[i] = f
	}
	s.status.record(n.Name, stage, peer.String(), time.Now())
	return send(io.MultiReader(readers...), size)
}
