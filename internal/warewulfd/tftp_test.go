package warewulfd

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/config"
)

func tftpEnv(t *testing.T) (*testEnv, []byte) {
	want, err := os.ReadFile("/usr/lib/ipxe/undionly.kpxe")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the ipxe package is not installed (test/deps.sh)")
		}
		t.Skip("needs /usr/lib/ipxe/undionly.kpxe (Debian ipxe)")
	}
	return newEnv(t, envOptions{nodesConf: nodesConf(""), tftp: true}), want
}

func goTFTP(t *testing.T, e *testEnv, name string, blksize int) ([]byte, error) {
	var buf bytes.Buffer
	err := tftpGet(e.srv.TFTPAddr().String(), name, blksize, &buf, 2*time.Second)
	return buf.Bytes(), err
}

// tftpGet fetches name from addr into w with the Go client, trying twice
// per packet with the given timeout.
func tftpGet(addr, name string, blksize int, w io.Writer, timeout time.Duration) error {
	c, err := tftp.NewClient(addr)
	if err != nil {
		return err
	}
	c.SetTimeout(timeout)
	c.SetRetries(2)
	if blksize > 0 {
		c.SetBlockSize(blksize)
	}
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(w)
	return err
}

func TestTFTPGoClient(t *testing.T) {
	e, want := tftpEnv(t)
	for _, bs := range []int{0, 1468, 8192} { // 512 default, then negotiated blksize
		got, err := goTFTP(t, e, "undionly.kpxe", bs)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("blksize %d: %v, %d bytes (want %d)", bs, err, len(got), len(want))
		}
	}
	// Debian's ipxe.efi, a link to /boot/ipxe.efi.
	if efi, err := os.ReadFile("/usr/lib/ipxe/ipxe.efi"); err == nil {
		if got, err := goTFTP(t, e, "ipxe.efi", 1468); err != nil || !bytes.Equal(got, efi) {
			t.Errorf("ipxe.efi: %v, %d bytes (want %d)", err, len(got), len(efi))
		}
	}
	if _, err := os.Stat("/usr/lib/ipxe/arm64-efi/snponly.efi"); err == nil {
		if _, err := goTFTP(t, e, "arm64-efi/snponly.efi", 1468); err != nil {
			t.Errorf("arm64-efi/snponly.efi: %v", err)
		}
	}
	for _, bad := range []string{"../../etc/passwd", "/etc/passwd", "/usr/lib/ipxe/undionly.kpxe", "a/../../etc/passwd", "nonexistent.efi", "."} {
		if got, err := goTFTP(t, e, bad, 0); err == nil {
			t.Errorf("%q: served %d bytes", bad, len(got))
		}
	}
}

func TestTFTPHpaClient(t *testing.T) {
	e, want := tftpEnv(t)
	tftpBin := needCmd(t, "tftp")
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(e.srv.TFTPAddr().String())
	get := func(name, out string) (string, error) {
		cmd := exec.Command(tftpBin, "-m", "binary", "127.0.0.1", port, "-c", "get", name, out)
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	out := filepath.Join(dir, "undionly.kpxe")
	if msg, err := get("undionly.kpxe", out); err != nil {
		t.Fatalf("tftp: %v: %s", err, msg)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("tftp-hpa got %d bytes, want %d", len(got), len(want))
	}
	for _, bad := range []string{"../../../etc/passwd", "/etc/passwd"} {
		dst := filepath.Join(dir, "bad")
		msg, _ := get(bad, dst)
		if b, err := os.ReadFile(dst); err == nil && len(b) > 0 {
			t.Errorf("%q: tftp-hpa fetched %d bytes", bad, len(b))
		}
		if !strings.Contains(strings.ToLower(msg), "error") {
			t.Errorf("%q: tftp-hpa says %q, want an error", bad, msg)
		}
	}
}

func TestTFTPDisabled(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), tftp: false})
	if e.srv.TFTPAddr() != nil {
		t.Fatal("tftp listens with tftp: enabled: false")
	}
}

// UEFI HTTP boot fetches the same binaries from /efi/.
func TestEFIOverHTTP(t *testing.T) {
	want, err := os.ReadFile("/usr/lib/ipxe/snponly.efi")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the ipxe package is not installed (test/deps.sh)")
		}
		t.Skip("needs /usr/lib/ipxe/snponly.efi (Debian ipxe)")
	}
	e := newEnv(t, envOptions{nodesConf: nodesConf("")})
	resp, body := e.get("/efi/snponly.efi")
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("%s, %d bytes (want %d)", resp.Status, len(body), len(want))
	}
	for _, bad := range []string{"/efi/../../../etc/passwd", "/efi/%2e%2e/%2e%2e/etc/passwd", "/efi//etc/passwd", "/efi/", "/efi/nonexistent.efi"} {
		if resp, _ := e.get(bad); resp.StatusCode != 404 {
			t.Errorf("%s: %s", bad, resp.Status)
		}
	}
}

// Debian's ipxe package ships ipxe.efi as a link to /boot/ipxe.efi: a link
// in the iPXE directory, put there by its owner, is followed wherever it
// points. In a directory others may write to, links are not followed.
func TestTFTPSymlinkedBinary(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "boot")
	want := randomBytes(t, 300<<10)
	writeFile(t, filepath.Join(outside, "ipxe.efi"), want)
	src := filepath.Join(t.TempDir(), "ipxe")
	writeFile(t, filepath.Join(src, "undionly.kpxe"), []byte("inside"))
	if err := os.Symlink(filepath.Join(outside, "ipxe.efi"), filepath.Join(src, "ipxe.efi")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(src, "x86")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(src, "etc")); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), tftp: true,
		edit: func(c *config.Config) { c.Paths.IpxeSource = src }})
	for _, name := range []string{"ipxe.efi", "x86/ipxe.efi"} {
		if got, err := goTFTP(t, e, name, 1468); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v, %d bytes (want %d)", name, err, len(got), len(want))
		}
		if resp, body := e.get("/efi/" + name); resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Errorf("/efi/%s: %s, %d bytes", name, resp.Status, len(body))
		}
	}
	for _, bad := range []string{"etc", "x86", "x86/../../etc/passwd"} {
		if got, err := goTFTP(t, e, bad, 0); err == nil {
			t.Errorf("%q: served %d bytes", bad, len(got))
		}
	}

	// Group- or world-writable: anyone with write access could plant a
	// link to a secret, so only what is really inside is served.
	if err := os.Chmod(src, 0o777); err != nil {
		t.Fatal(err)
	}
	if got, err := goTFTP(t, e, "ipxe.efi", 0); err == nil {
		t.Errorf("ipxe.efi from a world-writable directory: served %d bytes", len(got))
	}
	if got, err := goTFTP(t, e, "undionly.kpxe", 0); err != nil || string(got) != "inside" {
		t.Errorf("undionly.kpxe from a world-writable directory: %v, %q", err, got)
	}
}

// A link that root made to a directory others can write does not make
// what they put there root's: a link planted there to a secret is
// refused (the walk goes on past the directory link).
func TestSymlinkIntoWritableDir(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	writeFile(t, secret, []byte("root:secret"))
	drop := filepath.Join(t.TempDir(), "drop")
	if err := os.MkdirAll(drop, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(drop, 0o777); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "ipxe")
	writeFile(t, filepath.Join(src, "undionly.kpxe"), []byte("inside"))
	if err := os.Symlink(drop, filepath.Join(src, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(drop, "evil")); err != nil { // as any user could
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), tftp: true,
		edit: func(c *config.Config) { c.Paths.IpxeSource = src }})
	if got, err := goTFTP(t, e, "linkdir/evil", 0); err == nil {
		t.Errorf("tftp linkdir/evil: served %q", got)
	}
	if resp, body := e.get("/efi/linkdir/evil"); resp.StatusCode != 404 {
		t.Errorf("/efi/linkdir/evil: %s %q", resp.Status, body)
	}
}

// A FIFO (or any file that is not regular) is refused at once, over HTTP
// and TFTP, instead of holding a thread and descriptors until a writer
// comes.
func TestFIFORefused(t *testing.T) {
	src := filepath.Join(t.TempDir(), "ipxe")
	writeFile(t, filepath.Join(src, "undionly.kpxe"), []byte("inside"))
	if err := os.MkdirAll(filepath.Join(src, "w"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(src, "w", "fifo"), 0o666); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), tftp: true,
		edit: func(c *config.Config) { c.Paths.IpxeSource = src }})
	c := &http.Client{Timeout: 3 * time.Second}
	for i := 0; i < 20; i++ {
		resp, err := c.Get(e.base + "/efi/w/fifo")
		if err != nil {
			t.Fatalf("/efi/w/fifo: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("/efi/w/fifo: %s", resp.Status)
		}
	}
	if got, err := goTFTP(t, e, "w/fifo", 0); err == nil {
		t.Errorf("tftp w/fifo: served %q", got)
	}
	e.awaitLog(t, "efi: \\\"w/fifo\\\" is not a file")
}

// Upstream's default `tftp: ipxe` names Fedora's binaries
// (ipxe-snponly-x86_64.efi); from an ipxesource laid out as Debian's
// package (snponly.efi), TFTP and /efi/ serve them under upstream's
// names. A file that really has the asked name wins over its alias.
func TestIpxeUpstreamNamesFromDebian(t *testing.T) {
	src := filepath.Join(t.TempDir(), "ipxe")
	snp, undi := randomBytes(t, 170<<10), randomBytes(t, 70<<10)
	writeFile(t, filepath.Join(src, "snponly.efi"), snp)
	writeFile(t, filepath.Join(src, "undionly.kpxe"), undi)
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), tftp: true,
		edit: func(c *config.Config) { c.Paths.IpxeSource = src }})
	e.srv.log.SetLevel(logrus.DebugLevel)
	for name, want := range map[string][]byte{
		"ipxe-snponly-x86_64.efi": snp, "bin-x86_64-efi-snponly.efi": snp,
		"bin-x86_64-pcbios-undionly.kpxe": undi, "snponly.efi": snp,
	} {
		if got, err := goTFTP(t, e, name, 1468); err != nil || !bytes.Equal(got, want) {
			t.Errorf("tftp %s: %v, %d bytes (want %d)", name, err, len(got), len(want))
		}
		if resp, body := e.get("/efi/" + name); resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Errorf("/efi/%s: %s, %d bytes (want %d)", name, resp.Status, len(body), len(want))
		}
	}
	e.awaitLog(t, `level=debug`, `ipxe-snponly-x86_64.efi\" is not in `+src, `serving \"snponly.efi\"`)
	// Debian has no arm64 iPXE: still not found, under any name.
	for _, name := range []string{"arm64-efi/snponly.efi", "ipxe-snponly-arm64.efi"} {
		if got, err := goTFTP(t, e, name, 0); err == nil {
			t.Errorf("tftp %s: served %d bytes", name, len(got))
		}
		if resp, _ := e.get("/efi/" + name); resp.StatusCode != 404 {
			t.Errorf("/efi/%s: %s", name, resp.Status)
		}
	}
	own := randomBytes(t, 1000)
	writeFile(t, filepath.Join(src, "ipxe-snponly-x86_64.efi"), own)
	if got, err := goTFTP(t, e, "ipxe-snponly-x86_64.efi", 0); err != nil || !bytes.Equal(got, own) {
		t.Errorf("a site's own ipxe-snponly-x86_64.efi: %v, %d bytes (want %d)", err, len(got), len(own))
	}
}

// With the default map and the system's /usr/lib/ipxe (Debian's ipxe
// package), every x86 name of upstream's map is served.
func TestIpxeDefaultMapFromSystem(t *testing.T) {
	e, _ := tftpEnv(t)
	for arch, name := range e.cfg.TFTP.IPXE {
		if arch == "00:0B" { // Debian ships no arm64 iPXE
			continue
		}
		found, _ := e.cfg.IpxeBinary(name)
		want, err := os.ReadFile(filepath.Join(e.cfg.IpxeSourceDir(), found))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, err := goTFTP(t, e, name, 1468); err != nil || !bytes.Equal(got, want) {
			t.Errorf("tftp %s (%s): %v, %d bytes (want %d)", name, arch, err, len(got), len(want))
		}
	}
}
