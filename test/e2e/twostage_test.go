package e2e

import (
	"bufio"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// bigImageSize is the incompressible padding of the two-stage test's
// image (WW_E2E_BIG_MB to change it): more than iPXE on a BIOS node could
// hold comfortably, unpacked by stage 1 into the node's tmpfs.
var bigImageSize = func() int64 {
	if mb, err := strconv.Atoi(os.Getenv("WW_E2E_BIG_MB")); err == nil && mb > 0 {
		return int64(mb) << 20
	}
	return 2 << 30
}()

// writeRandom writes n incompressible bytes (ChaCha8: fast, and nothing a
// compressor can shrink).
func writeRandom(t testing.TB, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 4<<20)
	r := rand.NewChaCha8([32]byte{1, 6})
	buf := make([]byte, 1<<20)
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		r.Read(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			t.Fatal(err)
		}
		left -= k
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

var (
	reStage1Progress = regexp.MustCompile(`wwstage1: http://.*/image/.*: ([0-9]+)%`)
	reStage1Resumed  = regexp.MustCompile(`wwstage1: download of .*/image/.* resumed at byte`)
	reStage1Done     = regexp.MustCompile(`wwstage1: image: .* digest verified`)
)

// TestBootTwoStage boots a node whose image carries 2 GB of incompressible
// padding through the two-stage boot, and cuts its download twice: the
// link goes down for 5 s, then warewulfd is killed and started again. Stage
// 1 resumes each time with a Range request, checks the digest, and the node
// reaches its runtime overlay.
func TestBootTwoStage(t *testing.T) {
	e := getEnv(t)
	start := time.Now()
	root := filepath.Join(artifacts, "big-root")
	os.RemoveAll(root)
	busyboxRoot(t, root)
	writeRandom(t, filepath.Join(root, "padding"), bigImageSize)
	e.wwctl(t, "image", "import", root, "big")
	os.RemoveAll(root)
	// zstd: of the two, the cheaper to unpack under TCG.
	e.wwctl(t, "image", "build", "--compression", "zstd", "big")
	t.Logf("image with %d MB of padding imported and built in %v", bigImageSize>>20, time.Since(start).Round(time.Millisecond))

	const name, mac, ip = "ts1", "52:54:00:99:00:51", prefix + "51"
	e.wwctl(t, "node", "add", name, "--profile", "default", "--netdev", "eth0", "--hwaddr", mac,
		"--ipaddr", ip, "--netmask", netmask, "--image", "big", "--ipxe", "twostage")
	e.buildOverlays(t, name)
	t.Cleanup(func() { e.wwctl(t, "node", "delete", "--yes", name) })

	// The image unpacks into a tmpfs: RAM for it, the kernel and the rest.
	mem := strconv.FormatInt(bigImageSize>>20+900, 10)
	// -cpu max: TCG then emulates SHA-NI and AVX2, which Go's sha256 and
	// memmove use.
	v := bootVM(t, e.ns, name, mac, vmOpts{memory: mem, cpu: "max"})

	// Cut 1: the node's link goes down for 5 s at 20%.
	v.waitForMatch(t, reStage1Progress, 20, 15*time.Minute)
	run(t, nil, "ip", "-n", e.ns.name, "link", "set", v.tap, "down")
	time.Sleep(5 * time.Second)
	run(t, nil, "ip", "-n", e.ns.name, "link", "set", v.tap, "up")
	v.waitFor(t, reStage1Resumed, 5*time.Minute)
	t.Logf("link down 5 s: resumed")

	// Cut 2: warewulfd dies at 50% and comes back.
	v.waitForMatch(t, reStage1Progress, 50, 15*time.Minute)
	first := e.wwd
	syscall.Kill(e.wwd.cmd.Process.Pid, syscall.SIGKILL)
	<-e.wwd.done
	time.Sleep(2 * time.Second)
	e.wwd = e.startWarewulfd(t, e.ns, e.vars, "warewulfd-restarted")
	from := v.p.out.len()
	v.waitAfter(t, reStage1Resumed, from, 5*time.Minute)
	t.Logf("warewulfd restart: resumed")

	v.waitFor(t, reStage1Done, 15*time.Minute)
	v.bootTimes(t, "two-stage "+strconv.FormatInt(bigImageSize>>20, 10)+" MB, two cuts", 15*time.Minute)
	out := v.shell(t, "ls -l /padding; cat /proc/mounts | grep ' / '", time.Minute)
	if !regexp.MustCompile(`\b` + strconv.FormatInt(bigImageSize, 10) + `\b.*/padding`).MatchString(out) {
		t.Errorf("the node's /padding is not the %d bytes of the image:\n%s", bigImageSize, out)
	}
	if !regexp.MustCompile(`tmpfs / tmpfs`).MatchString(out) {
		t.Errorf("the node's root is not the tmpfs stage 1 made:\n%s", out)
	}
	for _, re := range []string{`stage=stage1 status=200`, `stage=kmods status=200`} {
		if _, _, ok := first.out.waitFor(regexp.MustCompile(re), 0, time.Second, nil); !ok {
			t.Errorf("warewulfd logged no line matching %q", re)
		}
	}
	e.daemonSaid(t, `stage=image status=206`) // the resume after the restart
}

// waitForMatch waits for a console line whose first group, a number, is at
// least min (a progress percentage).
func (v *vm) waitForMatch(t testing.TB, re *regexp.Regexp, least int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	from := 0
	for {
		i, _, ok := v.p.out.waitFor(re, from, time.Until(deadline), v.p.done)
		if !ok {
			t.Fatalf("%s: no console line matching %q with at least %d within %v\n%s", v.name, re, least, timeout, v.p.out.tail(30))
		}
		v.p.out.mu.Lock()
		m := re.FindStringSubmatch(stripANSI(v.p.out.lines[i]))
		v.p.out.mu.Unlock()
		if n, _ := strconv.Atoi(m[1]); n >= least {
			return
		}
		from = i + 1
	}
}
