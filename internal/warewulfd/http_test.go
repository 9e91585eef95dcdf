package warewulfd

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/archive"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
)

const baseNodes = `nodeprofiles:
  default:
    image name: img
    kernel:
      args: [quiet, crashkernel=no]
    network devices:
      default:
        device: eth0
        netmask: 255.0.0.0
nodes:
  n1:
    profiles: [default]
    asset key: %s
    network devices:
      default:
        hwaddr: 52:54:00:00:00:01
        ipaddr: 127.0.0.11
  n2:
    profiles: [default]
    ipxe template: custom
    network devices:
      default:
        hwaddr: 52:54:00:00:00:02
        ipaddr: 127.0.0.12
  noimage:
    network devices:
      default:
        hwaddr: 52:54:00:00:00:03
`

func nodesConf(assetKey string) string {
	if assetKey == "" {
		return strings.Replace(baseNodes, "    asset key: %s\n", "", 1)
	}
	return fmt.Sprintf(baseNodes, assetKey)
}

func TestIpxeScript(t *testing.T) {
	for _, secure := range []bool{true, false} {
		t.Run(fmt.Sprintf("secure=%v", secure), func(t *testing.T) {
			e := newEnv(t, envOptions{nodesConf: nodesConf(""), secure: secure})
			for _, mac := range []string{"52:54:00:00:00:01", "52-54-00-00-00-01", "52:54:00:00:00:01"} {
				resp, body := e.get("/ipxe/" + mac)
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %s", mac, resp.Status)
				}
				s := string(body)
				for _, want := range []string{
					"#!ipxe\n",
					"set base " + e.base + "\n",
					"kernel --name kernel ${base}/kernel/52:54:00:00:00:01?${params} quiet crashkernel=no wwid=52:54:00:00:00:01 initrd=image initrd=kmods initrd=system",
					"initrd --name image ${base}/image/52:54:00:00:00:01?compress=gz",
					"initrd --name kmods ${base}/kmods/52:54:00:00:00:01",
					"initrd --name system ${base}/system/52:54:00:00:00:01",
					"boot || goto failed",
				} {
					if !strings.Contains(s, want) {
						t.Errorf("script lacks %q:\n%s", want, s)
					}
				}
				if got := strings.Contains(s, "initrd=runtime") && strings.Contains(s, "initrd --name runtime"); got == secure {
					t.Errorf("secure=%v but runtime in script = %v:\n%s", secure, got, s)
				}
			}
		})
	}
}

func TestIpxeNodeTemplate(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf("")})
	// n2 names a template the site does not have yet: a 500 and a log line.
	if resp, _ := e.get("/ipxe/52:54:00:00:00:02"); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("missing template: %s", resp.Status)
	}
	writeFile(t, e.cfg.IpxeTemplateDir()+"/custom.ipxe", []byte("#!ipxe\necho custom {{.Name}} {{.KernelArgs}} {{.ImageName}}\n"))
	time.Sleep(1100 * time.Millisecond) // the template cache looks again after a second
	resp, body := e.get("/ipxe/52:54:00:00:00:02")
	if resp.StatusCode != 200 || string(body) != "#!ipxe\necho custom n2 quiet crashkernel=no img\n" {
		t.Fatalf("%s %q", resp.Status, body)
	}
}

func TestStageBytes(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), secure: false})
	system := e.nodeOverlay("n1", overlay.System, 5000)
	runtime := e.nodeOverlay("n1", overlay.Runtime, 3000)
	want := map[string][]byte{
		"kernel":  e.imageFile("vmlinuz"),
		"image":   e.imageFile("image.img"),
		"kmods":   e.imageFile("kmods.img"),
		"system":  system,
		"runtime": runtime,
	}
	for stage, w := range want {
		resp, body := e.get("/" + stage + "/52-54-00-00-00-01?compress=gz&uuid=abc")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", stage, resp.Status)
		}
		if !bytes.Equal(body, w) {
			t.Errorf("%s: got %d bytes, want the %d bytes of the built files", stage, len(body), len(w))
		}
		if resp.Header.Get("ETag") == "" || resp.Header.Get("Last-Modified") == "" {
			t.Errorf("%s: no ETag or Last-Modified: %v", stage, resp.Header)
		}
	}
	st := e.srv.statusReport()
	if st.Nodes[0].Node != "n1" || st.Nodes[0].Stage == "" || st.Nodes[0].IP != "127.0.0.1" {
		t.Errorf("status: %+v", st.Nodes)
	}
	// The per-request log line names node, stage, bytes, duration and status.
	e.awaitLog(t, "node=n1", "stage=image", fmt.Sprintf("bytes=%d", len(want["image"])), "duration=", "status=200")
}

// A node's script asks for the compression its image is built with; a
// script that asks for another still gets the built file (the kernel reads
// either), and the log line says so.
func TestCompress(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), comp: archive.Zstd})
	resp, script := e.get("/ipxe/52:54:00:00:00:01")
	if resp.StatusCode != 200 || !bytes.Contains(script, []byte("/image/52:54:00:00:00:01?compress=zstd&")) ||
		!bytes.Contains(script, []byte("/kmods/52:54:00:00:00:01?compress=zstd&")) || !bytes.Contains(script, []byte("/system/52:54:00:00:00:01?compress=gz&")) {
		t.Fatalf("%s\n%s", resp.Status, script)
	}
	img := e.imageFile("image.img")
	var before time.Time
	for _, q := range []string{"?compress=zstd", "", "?compress=gz"} {
		before = time.Now()
		resp, body := e.get("/image/52:54:00:00:00:01" + q)
		if resp.StatusCode != 200 || !bytes.Equal(body, img) {
			t.Fatalf("%s: %s, %d bytes", q, resp.Status, len(body))
		}
	}
	e.awaitLog(t, "level=warning", "stage=image", "served: compress=gz asked, sent zstd as built")
	if strings.Count(e.logs.String(), "compress=") != 1 {
		t.Errorf("only the mismatched request should warn:\n%s", e.logs)
	}
	if st := e.srv.statusReport(); st.Nodes[0].Stage != "image" || st.Nodes[0].Time.Before(before) {
		t.Errorf("a request served with a caveat still counts: %+v (sent after %s)", st.Nodes[0], before)
	}
	// The kernel is no archive: compress= does not apply to it.
	if resp, _ := e.get("/kernel/52:54:00:00:00:01?compress=gz"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
}

func TestRangeAndETag(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf("")})
	// A large system overlay goes out part by part with sendfile, a small
	// runtime overlay from memory; ranges cross the boundary of the parts.
	system := e.nodeOverlay("n1", overlay.System, 300<<10)
	runtime := e.nodeOverlay("n1", overlay.Runtime, 5000)
	img := e.imageFile("image.img")
	for _, c := range []struct {
		path     string
		file     []byte
		from, to int
	}{
		{"/image/52:54:00:00:00:01", img, 65000, 67000},
		{"/system/52:54:00:00:00:01", system, 65000, 67000},
		{"/runtime/52:54:00:00:00:01", runtime, 6000, 7000},
	} {
		resp, body := e.get(c.path, "Range", fmt.Sprintf("bytes=%d-%d", c.from, c.to-1))
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, c.file[c.from:c.to]) {
			t.Errorf("%s: range: %s, %d bytes, equal=%v", c.path, resp.Status, len(body), bytes.Equal(body, c.file[c.from:c.to]))
		}
		resp, body = e.get(c.path, "Range", "bytes=-100")
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, c.file[len(c.file)-100:]) {
			t.Errorf("%s: suffix range: %s", c.path, resp.Status)
		}
		resp, body = e.get(c.path, "Range", "bytes=0-9,100-109")
		if resp.StatusCode != http.StatusPartialContent || !bytes.Contains(body, c.file[100:110]) {
			t.Errorf("%s: two ranges: %s", c.path, resp.Status)
		}
		resp, _ = e.get(c.path)
		etag := resp.Header.Get("ETag")
		resp, body = e.get(c.path, "If-None-Match", etag)
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("%s: If-None-Match: %s", c.path, resp.Status)
		}
		resp, _ = e.get(c.path, "If-None-Match", `"other"`)
		if resp.StatusCode != 200 {
			t.Errorf("%s: other ETag: %s", c.path, resp.Status)
		}
		resp, _ = e.get(c.path, "If-Modified-Since", resp.Header.Get("Last-Modified"))
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s: If-Modified-Since: %s", c.path, resp.Status)
		}
	}
	// A rebuilt file (renamed into place) has a new ETag, from memory too
	// (looked at again after freshCheck).
	for _, kind := range []string{overlay.System, overlay.Runtime} {
		path := "/" + kind + "/52:54:00:00:00:01"
		resp, _ := e.get(path)
		before := resp.Header.Get("ETag")
		want := e.nodeOverlay("n1", kind, 5000)
		time.Sleep(freshCheck + 50*time.Millisecond)
		resp, body := e.get(path, "If-None-Match", before)
		if resp.StatusCode != 200 || resp.Header.Get("ETag") == before || !bytes.Equal(body, want) {
			t.Errorf("rebuilt %s overlay: %s, etag %s (was %s)", kind, resp.Status, resp.Header.Get("ETag"), before)
		}
	}
}

func TestUnknownMAC(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf("")})
	resp, body := e.get("/ipxe/aa:bb:cc:dd:ee:ff")
	s := string(body)
	if resp.StatusCode != 200 || !strings.Contains(s, "aa:bb:cc:dd:ee:ff) is not in nodes.conf") ||
		!strings.Contains(s, "sleep 30") || !strings.Contains(s, "chain --replace "+e.base+"/ipxe/aa:bb:cc:dd:ee:ff") {
		t.Fatalf("%s\n%s", resp.Status, s)
	}
	for _, stage := range []string{"kernel", "image", "kmods", "system", "runtime"} {
		if resp, _ := e.get("/" + stage + "/aa:bb:cc:dd:ee:ff"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s of unknown MAC: %s", stage, resp.Status)
		}
	}
	// A known node without an image waits too.
	resp, body = e.get("/ipxe/52:54:00:00:00:03")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "node noimage has no image") {
		t.Errorf("%s\n%s", resp.Status, body)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf("")})
	for path, code := range map[string]int{
		"/":                                     404,
		"/ipxe/":                                404,
		"/ipxe/52:54:00:00:00:0":                404,
		"/ipxe/52:54:00:00:00:01/x":             404,
		"/kernel/../../../../etc/passwd":        404,
		"/kernel/52:54:00:00:00:01/../../x":     404,
		"/boot/52:54:00:00:00:01":               404,
		"/image/52:54:00:00:00:01?compress=bz2": 400,
		"/image/52%3a54%3a00%3a00%3a00%3a01":    200,
	} {
		if resp, _ := e.get(path); resp.StatusCode != code {
			t.Errorf("%s: %s, want %d", path, resp.Status, code)
		}
	}
	resp, err := http.Post(e.base+"/ipxe/52:54:00:00:00:01", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
	}
	e.awaitLog(t, `method \"POST\" is not GET or HEAD`, "status=405", `path="/ipxe/52:54:00:00:00:01"`)
	// A range past the end: 416, and the log line says why.
	if resp, _ := e.get("/image/52:54:00:00:00:01", "Range", "bytes=999999999-"); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range past the end: %s", resp.Status)
	}
	e.awaitLog(t, "node=n1", "status=416", `requested range not satisfiable: \"bytes=999999999-\"`)
	// Headers beyond the bound are refused.
	req, _ := http.NewRequest("GET", e.base+"/ipxe/52:54:00:00:00:01", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("64 KiB header: %s", resp.Status)
		}
	}
}

func TestDiscovery(t *testing.T) {
	conf := `nodeprofiles:
  default:
    image name: img
    network devices:
      default:
        device: eth0
nodes:
  d1:
    profiles: [default]
    discoverable: true
  d2:
    profiles: [default]
    discoverable: true
`
	e := newEnv(t, envOptions{nodesConf: conf})
	// Many requests from one MAC at once take one node, and only one.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.get("/ipxe/52-54-00-aa-00-01")
		}()
	}
	wg.Wait()
	resp, body := e.get("/ipxe/52-54-00-aa-00-01")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "booting d1 (52:54:00:aa:00:01)") {
		t.Fatalf("%s\n%s", resp.Status, body)
	}
	_, body = e.get("/ipxe/52:54:00:aa:00:02")
	if !strings.Contains(string(body), "booting d2 (52:54:00:aa:00:02)") {
		t.Fatalf("second MAC:\n%s", body)
	}
	_, body = e.get("/ipxe/52:54:00:aa:00:03")
	if !strings.Contains(string(body), "is not in nodes.conf") {
		t.Fatalf("third MAC, no discoverable node left:\n%s", body)
	}
	db, err := node.Load(e.cfg.NodesConf())
	if err != nil {
		t.Fatal(err)
	}
	for name, mac := range map[string]string{"d1": "52:54:00:aa:00:01", "d2": "52:54:00:aa:00:02"} {
		c := db.Nodes[name]
		if c.NetDevs["default"] == nil || c.NetDevs["default"].Hwaddr != mac || node.Bool(c.Discoverable) {
			t.Errorf("nodes.conf %s: %+v", name, c)
		}
	}
}

func TestAutobuildOnce(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf("")})
	e.prov.buildDelay = 200 * time.Millisecond
	var wg sync.WaitGroup
	codes := make([]int, 32)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := e.get("/system/52:54:00:00:00:01")
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("request %d: %d", i, c)
		}
	}
	if n := e.prov.builds.Load(); n != 1 {
		t.Errorf("%d builds, want 1", n)
	}
}

func TestReload(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf("")})
	if _, body := e.get("/ipxe/52:54:00:00:00:09"); !strings.Contains(string(body), "not in nodes.conf") {
		t.Fatal("n9 known before it is added")
	}
	added := nodesConf("") + `  n9:
    profiles: [default]
    network devices:
      default:
        hwaddr: 52:54:00:00:00:09
`
	writeFile(t, e.cfg.NodesConf(), []byte(added))
	waitFor(t, func() bool {
		_, body := e.get("/ipxe/52:54:00:00:00:09")
		return strings.Contains(string(body), "booting n9")
	})
	// A broken nodes.conf keeps the last good one serving, and says why.
	writeFile(t, e.cfg.NodesConf(), []byte("nodes: [this is not a map\n"))
	waitFor(t, func() bool { return strings.Contains(e.logs.String(), "reload failed") })
	if _, body := e.get("/ipxe/52:54:00:00:00:09"); !strings.Contains(string(body), "booting n9") {
		t.Fatal("broken nodes.conf dropped the last good one")
	}
	// A transfer in flight survives a reload.
	resp, err := http.Get(e.base + "/image/52:54:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.cfg.NodesConf(), []byte(nodesConf("")))
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	rest, err := readAllFrom(resp, buf[:1000])
	if err != nil || !bytes.Equal(rest, e.imageFile("image.img")) {
		t.Fatalf("transfer across reload: %v, %d bytes", err, len(rest))
	}
	if _, body := e.get("/ipxe/52:54:00:00:00:09"); !strings.Contains(string(body), "not in nodes.conf") {
		t.Fatal("n9 still known after its removal")
	}
}

func readAllFrom(resp *http.Response, head []byte) ([]byte, error) {
	defer resp.Body.Close()
	var b bytes.Buffer
	b.Write(head)
	_, err := b.ReadFrom(resp.Body)
	return b.Bytes(), err
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("condition not met in 5 s")
}

func TestStatusAndMetrics(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf("")})
	e.get("/ipxe/52:54:00:00:00:01")
	e.get("/kernel/52:54:00:00:00:01")
	e.get("/kernel/aa:aa:aa:aa:aa:aa")
	r, err := FetchStatus(t.Context(), e.base+StatusPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Nodes) != 3 || r.Nodes[0].Node != "n1" || r.Nodes[0].Stage != "kernel" || r.Nodes[0].IP != "127.0.0.1" ||
		time.Since(r.Nodes[0].Time) > time.Minute || r.Nodes[1].Stage != "" {
		t.Errorf("status: %+v", r)
	}
	_, body := e.get(MetricsPath)
	for _, want := range []string{
		`warewulfd_http_requests_total{stage="ipxe"} 1`,
		`warewulfd_http_requests_total{stage="kernel"} 2`,
		`warewulfd_http_errors_total{stage="kernel"} 1`,
		fmt.Sprintf(`warewulfd_http_sent_bytes_total{stage="kernel"} %d`, len(e.imageFile("vmlinuz"))+len(http.StatusText(404))+1),
		"warewulfd_nodes 3",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("WWTEST_FLOOD") != "" { // a child of TestConnectionFlood
		os.Exit(floodChild())
	}
	os.Exit(m.Run())
}

// A client that never finishes its request is dropped.
func TestSlowClientDropped(t *testing.T) {
	old := headerTimeout
	headerTimeout = 300 * time.Millisecond
	t.Cleanup(func() { headerTimeout = old })
	e := newEnv(t, envOptions{nodesConf: nodesConf("")})
	c, err := net.Dial("tcp", e.srv.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write([]byte("GET /ipxe/52:54:00:00:00:01 HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || time.Since(start) > 3*time.Second {
		t.Fatalf("connection not closed after the header timeout: %v, %q", err, b)
	}
}

// warewulf.conf is watched too: turning secure mode on drops the runtime
// overlay from the iPXE script and protects it.
func TestReloadConfig(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), secure: false})
	e.nodeOverlay("n1", overlay.Runtime, 100)
	if _, body := e.get("/ipxe/52:54:00:00:00:01"); !strings.Contains(string(body), "initrd=runtime") {
		t.Fatal("runtime missing from the script without secure mode")
	}
	cfg := *e.cfg
	cfg.Warewulf.Secure = true
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.srv.opts.ConfigFile, data)
	waitFor(t, func() bool {
		_, body := e.get("/ipxe/52:54:00:00:00:01")
		return !strings.Contains(string(body), "initrd=runtime")
	})
	if resp, _ := e.get("/runtime/52:54:00:00:00:01"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("runtime after secure mode was turned on: %s", resp.Status)
	}
	// A broken warewulf.conf keeps the last good one.
	writeFile(t, e.srv.opts.ConfigFile, []byte("warewulf: {port: -1}\n"))
	waitFor(t, func() bool { return strings.Contains(e.logs.String(), "reload failed") })
	if resp, _ := e.get("/runtime/52:54:00:00:00:01"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("runtime after a broken warewulf.conf: %s", resp.Status)
	}
}

// A refused path is logged cut short: a client cannot make each log line
// as long as its request.
func TestRefusedPathLoggedShort(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf("")})
	long := strings.Repeat("a", 15000)
	for _, p := range []string{"/" + long, "/efi/" + long, "/ipxe/" + long, "/kernel/" + long} {
		if resp, _ := e.get(p); resp.StatusCode != 404 {
			t.Errorf("%s...: %s", p[:10], resp.Status)
		}
	}
	e.awaitLog(t, "(15000 bytes)")
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if len(line) > 1200 {
			t.Errorf("a log line of %d bytes: %.300s...", len(line), line)
		}
	}
}
