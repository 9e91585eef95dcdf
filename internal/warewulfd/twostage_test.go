package warewulfd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/archive"
	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/stage1"
)

// twostageNodes is baseNodes with n1 on the twostage template.
func twostageNodes() string {
	return strings.Replace(nodesConf(""), "  n1:\n    profiles: [default]\n", "  n1:\n    profiles: [default]\n    ipxe template: twostage\n", 1)
}

func TestTwoStageIpxeScript(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: twostageNodes(), comp: archive.Zstd})
	resp, body := e.get("/ipxe/52:54:00:00:00:01")
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	for _, want := range []string{
		"kernel --name kernel ${base}/kernel/52:54:00:00:00:01?${params} quiet crashkernel=no wwid=52:54:00:00:00:01 wwstage1.base=${base} wwstage1.ip=${ip} wwstage1.netmask=${netmask} wwstage1.gateway=${gateway} wwstage1.compress=zstd wwstage1.runtime=1 initrd=stage1 initrd=kmods",
		"initrd --name stage1 ${base}/stage1/52:54:00:00:00:01?${params} ",
		"initrd --name kmods ${base}/kmods/52:54:00:00:00:01?compress=zstd&${params} ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("script lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(string(body), "/image/") {
		t.Errorf("the twostage script loads the image through iPXE:\n%s", body)
	}
}

func TestImageDigest(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf("")})
	for _, stage := range []string{"image", "kmods"} {
		resp, body := e.get("/" + stage + "/52:54:00:00:00:01")
		sum := sha256.Sum256(body)
		if got, want := resp.Header.Get(stage1.DigestHeader), stage1.FormatDigest(sum[:]); got != want {
			t.Errorf("%s: %s %q, want %q", stage, stage1.DigestHeader, got, want)
		}
		// A range response describes the same file: same digest.
		r2, part := e.get("/"+stage+"/52:54:00:00:00:01", "Range", "bytes=100-")
		if r2.StatusCode != http.StatusPartialContent || r2.Header.Get(stage1.DigestHeader) != resp.Header.Get(stage1.DigestHeader) || !bytes.Equal(part, body[100:]) {
			t.Errorf("%s range: %s, digest %q", stage, r2.Status, r2.Header.Get(stage1.DigestHeader))
		}
	}
	// A rebuilt image gets its new digest.
	img := randomBytes(t, 1<<20)
	p := filepath.Join(e.cfg.ImageProvisionDir("img"), "image.img")
	os.WriteFile(p+".new", img, 0o644)
	os.Rename(p+".new", p)
	time.Sleep(cacheTTL + 100*time.Millisecond)
	resp, _ := e.get("/image/52:54:00:00:00:01")
	sum := sha256.Sum256(img)
	if got := resp.Header.Get(stage1.DigestHeader); got != stage1.FormatDigest(sum[:]) {
		t.Errorf("after a rebuild: digest %q, want the new file's", got)
	}
}

// slowGet starts a download and reads only its first bytes, holding the
// transfer (and its pacing slot) open until release is closed.
func slowGet(t *testing.T, url string, release <-chan struct{}) <-chan int {
	status := make(chan int, 1)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	status <- resp.StatusCode
	go func() {
		defer resp.Body.Close()
		io.ReadFull(resp.Body, make([]byte, 1024))
		<-release
		io.Copy(io.Discard, resp.Body)
	}()
	return status
}

func TestPacingRefusesOverBudget(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), imageSize: 64 << 20, edit: func(c *config.Config) {
		c.Pacing.ImageDownloads = 1
	}})
	url := e.base + "/image/52:54:00:00:00:01"
	release := make(chan struct{})
	if s := <-slowGet(t, url, release); s != 200 {
		t.Fatalf("first download: %d", s)
	}
	resp, _ := e.get("/image/52:54:00:00:00:02")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second download at once: %s, want 503", resp.Status)
	}
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > 60 {
		t.Errorf("Retry-After %q, want 1-60 seconds", resp.Header.Get("Retry-After"))
	}
	e.awaitLog(t, "over the image download budget", "status=503", "node=n2")
	// Not paced: HEAD, the kernel, kmods (iPXE cannot wait), overlays.
	for _, p := range []string{"/kernel/", "/kmods/", "/system/"} {
		if r, _ := e.get(p + "52:54:00:00:00:02"); r.StatusCode != 200 {
			t.Errorf("%s while an image transfer holds the budget: %s", p, r.Status)
		}
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _ := e.get("/image/52:54:00:00:00:02")
		if r.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the budget never freed: %s", r.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stage 1's download honours 503 + Retry-After: three clients against a
// budget of one transfer all finish, with the digest checked.
func TestPacingHonouredByStage1(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), edit: func(c *config.Config) {
		c.Pacing.ImageDownloads = 1
		c.Pacing.ImageBandwidth = "8M" // 8 MB/s: the ~6 MB image takes most of a second
	}})
	// The image is a real archive, so stage 1 can unpack it.
	var buf bytes.Buffer
	w, _ := archive.NewWriter(&buf, archive.Gzip)
	payload := randomBytes(t, 6<<20)
	w.WriteFile(&archive.Header{Name: "payload", Mode: archive.TypeReg | 0o644}, payload)
	w.Close()
	writeFile(t, filepath.Join(e.cfg.ImageProvisionDir("img"), "image.img"), buf.Bytes())
	var wg sync.WaitGroup
	stats := make([]stage1.Stats, 3)
	errs := make([]error, 3)
	start := time.Now()
	for i := range stats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			root := t.TempDir()
			stats[i], errs[i] = stage1.Fetch(context.Background(), nil, e.base+"/image/52:54:00:00:00:01", root, t.Logf)
			if got, _ := os.ReadFile(filepath.Join(root, "payload")); errs[i] == nil && !bytes.Equal(got, payload) {
				t.Errorf("client %d: payload differs", i)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	waits := 0
	for i := range stats {
		if errs[i] != nil {
			t.Errorf("client %d: %v", i, errs[i])
		}
		if !stats[i].Verified {
			t.Errorf("client %d: digest not checked", i)
		}
		waits += stats[i].Waits
	}
	if waits == 0 {
		t.Error("no client was told to wait: the budget of one transfer was not applied")
	}
	// 3 x 6 MB at 8 MB/s (one second's burst first): at least 1.2 s.
	if took < 1200*time.Millisecond {
		t.Errorf("3 x 6 MB in %v: faster than the 8 MB/s budget allows", took)
	}
	t.Logf("3 clients, budget 1 transfer at 8 MB/s: %v, %d waits", took.Round(time.Millisecond), waits)
}

func TestBadPacingConfig(t *testing.T) {
	for _, v := range []string{"fast", "-3M", "10Tbit"} {
		_, err := config.Parse([]byte("ipaddr: 10.0.0.1\nnetmask: 255.0.0.0\npacing:\n  image bandwidth: " + v + "\n"))
		if err == nil || !strings.Contains(err.Error(), "pacing: image bandwidth") || !strings.Contains(err.Error(), v) {
			t.Errorf("image bandwidth %q: err %v", v, err)
		}
	}
	for v, want := range map[string]int64{"10Gbit": 1_250_000_000, "125M": 125_000_000, "4096": 4096, "": 0} {
		if got, err := config.ParseBandwidth(v); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", v, got, err, want)
		}
	}
}

func TestStage1Route(t *testing.T) {
	datadir := t.TempDir()
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), edit: func(c *config.Config) { c.Paths.Datadir = datadir }})
	if r, _ := e.get("/stage1/52:54:00:00:00:01"); r.StatusCode != 404 {
		t.Errorf("without a wwstage1 binary: %s, want 404", r.Status)
	}
	e.awaitLog(t, "no wwstage1 binary", "stage=stage1")
	bin := []byte("\x7fELF pretend stage 1")
	writeFile(t, filepath.Join(e.cfg.DataDir(), "stage1", Stage1Binary), bin)
	resp, body := e.get("/stage1/52:54:00:00:00:01")
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	z, err := archive.Decompressor(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	cr := archive.NewCpioReader(z)
	found := map[string]*archive.Header{}
	for {
		h, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		found[h.Name] = h
		if h.Name == "init" {
			if got, _ := io.ReadAll(cr); !bytes.Equal(got, bin) {
				t.Errorf("/init is not the binary")
			}
		}
	}
	if h := found["init"]; h == nil || h.Mode != archive.TypeReg|0o755 {
		t.Errorf("init: %+v", h)
	}
	if h := found["dev/console"]; h == nil || h.Mode&archive.TypeMask != archive.TypeChar || h.RdevMajor != 5 || h.RdevMinor != 1 {
		t.Errorf("dev/console: %+v", h)
	}
	if r, _ := e.get("/stage1/52:54:00:00:00:01", "If-None-Match", resp.Header.Get("ETag")); r.StatusCode != http.StatusNotModified {
		t.Errorf("same binary, If-None-Match: %s", r.Status)
	}
}

func TestFindInitramfs(t *testing.T) {
	root := t.TempDir()
	kver := "6.1.0-57-amd64"
	for _, f := range []string{"boot/initramfs-" + kver + "kdump.img", "boot/initrd.img-6.1.0-5", "boot/initrd.img-" + kver} {
		writeFile(t, filepath.Join(root, f), []byte(f))
	}
	os.Symlink("/etc/shadow", filepath.Join(root, "boot/initramfs-9.9.9"))
	got, err := findInitramfs(root, kver)
	if err != nil || got != filepath.Join(root, "boot/initrd.img-"+kver) {
		t.Errorf("got %q, %v", got, err)
	}
	writeFile(t, filepath.Join(root, "boot/initramfs-"+kver+".img"), []byte("dracut"))
	if got, _ := findInitramfs(root, kver); got != filepath.Join(root, "boot/initramfs-"+kver+".img") {
		t.Errorf("dracut's name first: got %q", got)
	}
	// A link that points out of the image resolves inside it.
	if got, err := findInitramfs(root, "9.9.9"); err == nil {
		t.Errorf("a link to the host's /etc/shadow was followed: %q", got)
	}
	if _, err := findInitramfs(root, "5.0.0"); err == nil || !strings.Contains(err.Error(), "no initramfs for kernel 5.0.0") {
		t.Errorf("missing: %v", err)
	}
}

// A small image is kept in memory (not sent by sendfile): the bandwidth
// budget holds it too.
func TestPacingSmallImage(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), imageSize: 32 << 10, edit: func(c *config.Config) {
		c.Pacing.ImageBandwidth = "64k" // 64 KB/s, a one-second burst
	}})
	start := time.Now()
	for i := range 5 {
		resp, body := e.get("/image/52:54:00:00:00:01")
		if resp.StatusCode != 200 || len(body) != 32<<10 {
			t.Fatalf("download %d: %s, %d bytes", i, resp.Status, len(body))
		}
	}
	// 160 KiB at 64 KB/s after a 64 KB burst: about 1.5 s.
	if took := time.Since(start); took < 1200*time.Millisecond {
		t.Errorf("5 x 32 KiB in %v: faster than the 64 KB/s budget allows", took)
	}
}

// /initramfs/<mac> sends the image's own dracut initramfs, as upstream's
// dracut template asks; an image without one is a 404 naming the kernel.
func TestInitramfsRoute(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf("")})
	if r, _ := e.get("/initramfs/52:54:00:00:00:01"); r.StatusCode != 404 {
		t.Errorf("no initramfs in the image: %s, want 404", r.Status)
	}
	e.awaitLog(t, "no initramfs for kernel "+testKernelVersion, "stage=initramfs", "status=404")
	data := randomBytes(t, 300<<10)
	writeFile(t, filepath.Join(e.cfg.ImageRootfs("img"), "boot", "initramfs-"+testKernelVersion+".img"), data)
	time.Sleep(cacheTTL + 100*time.Millisecond)
	resp, body := e.get("/initramfs/52:54:00:00:00:01")
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("%s, %d bytes", resp.Status, len(body))
	}
	sum := sha256.Sum256(data)
	if resp.Header.Get(stage1.DigestHeader) != stage1.FormatDigest(sum[:]) {
		t.Errorf("no digest on the initramfs")
	}
}

func TestDracutIpxeScript(t *testing.T) {
	nodes := strings.Replace(nodesConf(""), "  n1:\n    profiles: [default]\n", "  n1:\n    profiles: [default]\n    ipxe template: dracut\n", 1)
	e := newEnv(t, envOptions{nodesConf: nodes})
	_, body := e.get("/ipxe/52:54:00:00:00:01")
	for _, want := range []string{
		"initrd=initramfs rd.neednet=1 ifname=eth0:52:54:00:00:00:01 ip=eth0:dhcp root=wwinit:tmpfs wwinit.server=${base} wwid=52:54:00:00:00:01 init=/warewulf/run-init quiet crashkernel=no",
		"initrd --name initramfs ${base}/initramfs/52:54:00:00:00:01",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("dracut script lacks %q:\n%s", want, body)
		}
	}
}
