package warewulfd

import (
	"bytes"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// controllerLoader is Debian's signed shim or GRUB on this machine, the
// fallback when an image has none (test/deps.sh installs shim-signed and
// grub-efi-amd64-signed).
func controllerLoader(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (test/deps.sh installs shim-signed and grub-efi-amd64-signed)", err)
		}
		t.Skipf("needs %s", file)
	}
	return b
}

const (
	debianShim = "/usr/lib/shim/shimx64.efi.signed"
	debianGrub = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"
)

func getFrom(t *testing.T, e *testEnv, ip, path string) (*http.Response, []byte) {
	t.Helper()
	resp, err := clientFrom(ip, 0).Get(e.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestGrubConfig: /grub/MAC renders the shipped grub.cfg.ww for the node:
// GRUB loads the same kernel, image, kmods and overlays as iPXE, the
// runtime overlay only outside secure mode; GRUB's own searches under its
// prefix (grub.cfg-01-MAC, grub.cfg) are answered.
func TestGrubConfig(t *testing.T) {
	for _, secure := range []bool{false, true} {
		e := newEnv(t, envOptions{nodesConf: nodesConf(""), secure: secure})
		for _, p := range []string{"/grub/52:54:00:00:00:01", "/grub/52-54-00-00-00-01", "/grub/grub.cfg-01-52-54-00-00-00-01",
			"/provision/52:54:00:00:00:01?stage=grub", "/efiboot/grub.cfg?wwid=52:54:00:00:00:01"} {
			resp, body := e.get(p)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %s", p, resp.Status)
			}
			s := string(body)
			for _, want := range []string{
				`set base="(http,127.0.0.1:9873)"`,
				`set default=single-stage`,
				`linux "${base}/kernel/52:54:00:00:00:01?${query}" wwid=52:54:00:00:00:01 quiet crashkernel=no`,
				`initrd "${base}/image/52:54:00:00:00:01?${query}&compress=gz" "${base}/kmods/52:54:00:00:00:01?${query}&compress=gz" "${base}/system/52:54:00:00:00:01?${query}&compress=gz"`,
				`smbios --type 3 --get-string 8 --set assetkey`,
			} {
				if !strings.Contains(s, want) {
					t.Errorf("%s: grub.cfg lacks %q:\n%s", p, want, s)
				}
			}
			if got := strings.Contains(s, "/runtime/"); got == secure {
				t.Errorf("secure=%v, runtime overlay in grub.cfg: %v", secure, got)
			}
		}
		e.awaitLog(t, "node=n1", "stage=grub", "status=200")
		e.awaitLog(t, "node=n1", "stage=efiboot", "status=200")
	}

	e := newEnv(t, envOptions{nodesConf: nodesConf("KEY")})
	// GRUB's first config: the same for all, it asks for /grub/MAC.
	resp, body := e.get("/grub/grub.cfg")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `configfile "(http,127.0.0.1:9873)/grub/${net_default_mac}?assetkey=${assetkey}"`) {
		t.Fatalf("/grub/grub.cfg: %s\n%s", resp.Status, body)
	}
	for p, code := range map[string]int{
		"/grub/52:54:00:00:00:01":                  http.StatusUnauthorized, // n1 has an asset key
		"/grub/52:54:00:00:00:01?assetkey=wrong":   http.StatusUnauthorized,
		"/grub/52:54:00:00:00:01?assetkey=KEY":     http.StatusOK,
		"/grub/52:54:00:00:00:99":                  http.StatusNotFound,
		"/grub/grub.cfg-C0A80001":                  http.StatusNotFound, // GRUB's search by IP address
		"/grub/not-a-mac":                          http.StatusNotFound,
		"/efiboot/grub.cfg":                        http.StatusNotFound, // 127.0.0.1 is no node's
		"/efiboot/grub.cfg?wwid=52:54:00:00:00:02": http.StatusOK,
		"/efiboot/vmlinuz":                         http.StatusNotFound,
	} {
		if resp, _ := e.get(p); resp.StatusCode != code {
			t.Errorf("%s: %s, want %d", p, resp.Status, code)
		}
	}
	if strings.Contains(e.logs.String(), "KEY") {
		t.Errorf("the asset key is in the log:\n%s", e.logs.String())
	}

	// A tag picks the menu entry; a site template replaces the shipped one
	// (upstream's template data: .Tags, .Authority, .Id, ...).
	e.setTag("n2", "GrubMenuEntry", "dracut")
	if _, body := e.get("/grub/52:54:00:00:00:02"); !strings.Contains(string(body), "set default=dracut") {
		t.Errorf("GrubMenuEntry=dracut: %s", body)
	}
	writeFile(t, e.cfg.GrubTemplate(), []byte(`{{ .Tags.GrubMenuEntry }} {{ .Authority }} {{ .Id }} {{ .Hwaddr }} {{ .ImageName }} {{ .Port }} {{ upper .Id }}`))
	if resp, body := e.get("/grub/52:54:00:00:00:02"); resp.StatusCode != 200 || string(body) != "dracut 127.0.0.1:9873 n2 52:54:00:00:00:02 img 9873 N2" {
		t.Errorf("site template: %s %q", resp.Status, body)
	}
	writeFile(t, e.cfg.GrubTemplate(), []byte(`{{ .NoSuchField }}`))
	if resp, _ := e.get("/grub/52:54:00:00:00:02"); resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("broken template: %s", resp.Status)
	}
}

// setTag adds a tag to a node in nodes.conf and waits for the reload.
func (e *testEnv) setTag(nodeName, key, value string) {
	e.t.Helper()
	data, err := os.ReadFile(e.cfg.NodesConf())
	if err != nil {
		e.t.Fatal(err)
	}
	s := strings.Replace(string(data), "  "+nodeName+":\n", "  "+nodeName+":\n    tags:\n      "+key+": "+value+"\n", 1)
	writeFile(e.t, e.cfg.NodesConf(), []byte(s))
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n := e.srv.st.Load().nodes[nodeName]; n != nil && n.Tags[key] == value {
			return
		}
	}
	e.t.Fatalf("nodes.conf change of %s not loaded", nodeName)
}

// TestEFIBootLoaders: shim and GRUB come from the node's image (found by
// ?wwid=, by its configured address, or by the neighbour table), else from
// the controller; a link in the image cannot lead out of it, and a node
// whose image does not exist gets 404.
func TestEFIBootLoaders(t *testing.T) {
	hostShim := controllerLoader(t, debianShim)
	hostGrub := controllerLoader(t, debianGrub)
	e := newEnv(t, envOptions{nodesConf: nodesConf("") + "  gone:\n    image name: gone\n    network devices:\n      default:\n        hwaddr: 52:54:00:00:00:04\n"})
	rootfs := e.cfg.ImageRootfs("img")
	imgShim := []byte("the image's shim")
	writeFile(t, filepath.Join(rootfs, "usr/lib64/efi/shim.efi"), imgShim)
	// A link out of the image: not followed, the controller's GRUB is sent.
	os.MkdirAll(filepath.Join(rootfs, "usr/lib/grub/x86_64-efi-signed"), 0o755)
	if err := os.Symlink("/etc/passwd", filepath.Join(rootfs, "usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed")); err != nil {
		t.Fatal(err)
	}
	check := func(ip, path string, want []byte) {
		t.Helper()
		resp, body := getFrom(t, e, ip, path)
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Errorf("%s from %s: %s, %d bytes, want %d", path, ip, resp.Status, len(body), len(want))
		}
	}
	check("127.0.0.1", "/efiboot/shim.efi?wwid=52:54:00:00:00:01", imgShim)
	check("127.0.0.11", "/efiboot/shim.efi", imgShim) // n1's address
	check("127.0.0.11", "/efiboot//grubx64.efi", hostGrub)
	check("127.0.0.1", "/efiboot/shim.efi", hostShim) // no node: the controller's
	e.awaitLog(t, "stage=efiboot", "file="+filepath.Join(rootfs, "usr/lib64/efi/shim.efi"), "node=n1")
	e.awaitLog(t, "stage=efiboot", "file="+debianGrub, "node=n1")
	if resp, _ := e.get("/efiboot/shim.efi?wwid=52:54:00:00:00:04"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("node with a missing image: %s", resp.Status)
	}
	if resp, _ := e.get("/efiboot/shim.efi?wwid=nonsense"); resp.StatusCode != http.StatusOK {
		t.Errorf("unknown node: %s (the controller's shim, as upstream boots unknown nodes)", resp.Status)
	}

	// The neighbour table names the node of an address it does not have.
	arp := filepath.Join(t.TempDir(), "arp")
	writeFile(t, arp, []byte("IP address       HW type     Flags       HW address            Mask     Device\n"+
		"127.0.0.77       0x1         0x2         52:54:00:00:00:01     *        lo\n"+
		"127.0.0.78       0x1         0x0         52:54:00:00:00:02     *        lo\n"))
	old := arpFile
	arpFile = arp
	t.Cleanup(func() { arpFile = old })
	check("127.0.0.77", "/efiboot/shim.efi", imgShim)
	if mac := arpLookup(netip.MustParseAddr("127.0.0.78")); mac != "" {
		t.Errorf("incomplete neighbour entry used: %s", mac)
	}
}

// TestTFTPGrub: over TFTP, warewulf/shim.efi and warewulf/grubx64.efi (the
// names DHCP and shim ask for) and grub/grub.cfg, the chain to /grub/MAC.
func TestTFTPGrub(t *testing.T) {
	hostShim := controllerLoader(t, debianShim)
	hostGrub := controllerLoader(t, debianGrub)
	e, _ := tftpEnv(t)
	for name, want := range map[string][]byte{"warewulf/shim.efi": hostShim, "warewulf/grubx64.efi": hostGrub, "/warewulf/shimx64.efi": hostShim} {
		if got, err := goTFTP(t, e, name, 1468); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v, %d bytes, want %d", name, err, len(got), len(want))
		}
	}
	for _, name := range []string{"grub/grub.cfg", "warewulf/grub.cfg"} {
		got, err := goTFTP(t, e, name, 0)
		if err != nil || !strings.Contains(string(got), "/grub/${net_default_mac}?assetkey=${assetkey}") {
			t.Errorf("%s: %v %q", name, err, got)
		}
	}
	for _, name := range []string{"grub/grub.cfg-01-52-54-00-00-00-01", "warewulf/../warewulf/shim.efi", "warewulf/vmlinuz", "grub/shim.efi"} {
		if got, err := goTFTP(t, e, name, 0); err == nil {
			t.Errorf("%s: served %d bytes", name, len(got))
		}
	}
}

// TestTFTPGrubProvision: a GRUB that came by TFTP (Debian's signed GRUB
// has no http) gets its grub.cfg, kernel, image, kmods and overlays as
// warewulf/STAGE/MAC?assetkey=KEY; the asset key is checked and never
// logged, and the runtime overlay does not go by TFTP in secure mode.
func TestTFTPGrubProvision(t *testing.T) {
	controllerLoader(t, "/usr/lib/ipxe/undionly.kpxe")
	for _, secure := range []bool{false, true} {
		e := newEnv(t, envOptions{nodesConf: nodesConf("KEY"), tftp: true, secure: secure})
		mac := "52:54:00:00:00:01"
		get := func(name string) ([]byte, error) { return goTFTP(t, e, name, 1468) }
		cfg, err := get("warewulf/grub/" + mac + "?assetkey=KEY")
		if err != nil || !strings.Contains(string(cfg), `set base="(tftp,127.0.0.1)/warewulf"`) || !strings.Contains(string(cfg), `linux "${base}/kernel/`+mac+`?${query}"`) {
			t.Fatalf("grub.cfg by TFTP: %v\n%s", err, cfg)
		}
		if got, err := get("warewulf/kernel/" + mac + "?assetkey=KEY"); err != nil || !bytes.Equal(got, e.imageFile("vmlinuz")) {
			t.Errorf("kernel: %v, %d bytes", err, len(got))
		}
		if got, err := get("warewulf/image/" + mac + "?assetkey=KEY&compress=gz"); err != nil || !bytes.Equal(got, e.imageFile("image.img")) {
			t.Errorf("image: %v, %d bytes", err, len(got))
		}
		sys := e.nodeOverlay("n1", "system", 3000)
		if got, err := get("warewulf/system/" + mac + "?assetkey=KEY"); err != nil || !bytes.Equal(got, sys) {
			t.Errorf("system overlay: %v, %d bytes, want %d", err, len(got), len(sys))
		}
		e.nodeOverlay("n1", "runtime", 3000)
		if _, err := get("warewulf/runtime/" + mac + "?assetkey=KEY"); (err == nil) == secure {
			t.Errorf("secure=%v: runtime overlay by TFTP: %v", secure, err)
		}
		for _, bad := range []string{"warewulf/kernel/" + mac, "warewulf/kernel/" + mac + "?assetkey=nope", "warewulf/kernel/52:54:00:00:00:99", "warewulf/ipxe/" + mac} {
			if got, err := get(bad); err == nil {
				t.Errorf("%s: served %d bytes", bad, len(got))
			}
		}
		time.Sleep(100 * time.Millisecond)
		if strings.Contains(e.logs.String(), "KEY") {
			t.Errorf("the asset key is in the log:\n%s", e.logs.String())
		}
		e.awaitLog(t, "tftp: served", `file="warewulf/kernel/`+mac+`"`)
		// The reason is logged once; the client is told only "refused".
		e.awaitLog(t, "tftp: node n1: asset key does not match", `file="warewulf/kernel/`+mac+`"`)
		if n := strings.Count(e.logs.String(), "asset key does not match"); n != 2 {
			t.Errorf("%d log lines for the two refused requests", n)
		}
		if _, err := get("warewulf/kernel/" + mac); err == nil || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "asset") {
			t.Errorf("the client was told: %v", err)
		}
	}
}

// discard is a TFTP transfer that only counts what it is sent.
type discard struct{ n int64 }

func (d *discard) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(io.Discard, r)
	d.n += n
	return n, err
}

// FuzzTFTPGrubName: any TFTP file name (network input) either is not the
// GRUB path's, or is served only under the names it serves, without panic.
func FuzzTFTPGrubName(f *testing.F) {
	for _, s := range []string{"warewulf/shim.efi", "/warewulf/grubx64.efi", "grub/grub.cfg", "warewulf/grub.cfg",
		"warewulf/kernel/52:54:00:00:00:01?assetkey=x", "/warewulf/grub/52-54-00-00-00-01", "warewulf/../etc/passwd",
		"warewulf/runtime/52:54:00:00:00:01?", "grub/grub.cfg-01-52-54-00-00-00-01", "warewulf//shim.efi", "?"} {
		f.Add(s)
	}
	e := newEnv(f, envOptions{nodesConf: nodesConf(""), quiet: true})
	f.Fuzz(func(t *testing.T, name string) {
		var d discard
		ok, err := e.srv.tftpGrub(name, &d)
		if !ok || err != nil {
			return
		}
		p, _, _ := strings.Cut(strings.TrimPrefix(name, "/"), "?")
		dir, base := filepath.Split(p)
		if _, _, isLoader := loaderOf(base); base == GrubCfgName && (dir == "grub/" || dir == TFTPGrubDir) || isLoader && dir == TFTPGrubDir {
			return
		}
		if stage, _, err := ParsePath(strings.TrimPrefix(p, "warewulf")); err == nil && strings.HasPrefix(p, TFTPGrubDir) && stage != StageIpxe && stage != StageEFIBoot {
			return
		}
		t.Fatalf("served %q (%d bytes)", name, d.n)
	})
}
