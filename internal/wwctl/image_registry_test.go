package wwctl

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
)

func imgNeed(t *testing.T, tools ...string) {
	t.Helper()
	missing := ""
	if os.Geteuid() != 0 {
		missing = "root"
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = tool
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but %s is missing", missing)
	}
	t.Skipf("needs %s", missing)
}

func imgSh(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("sh", "-ec", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

// imgListing describes a tree for comparison: path, type and mode, owner,
// size and link target, then every regular file's content checksum.
func imgListing(t *testing.T, dir string) string {
	return imgSh(t, "cd "+dir+" && find . -mindepth 1 -printf '%p %M %U:%G %s %l %n\\n' | sort && "+
		"find . -type f -print0 | sort -z | xargs -0 -r sha256sum")
}

// TestImageImportFromRegistry is the CLI path end to end: an image with two
// layers (the second deletes and replaces files) is made with umoci, pushed
// with skopeo to Debian's distribution registry on loopback, and
// `wwctl image import --plain-http docker://...` gives the same tree as
// `umoci unpack`; --build builds it.
func TestImageImportFromRegistry(t *testing.T) {
	imgNeed(t, "docker-registry", "umoci", "skopeo")
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	regConf := filepath.Join(dir, "registry.yml")
	os.WriteFile(regConf, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: %s\n", dir, addr)), 0o644)
	reg := exec.Command("docker-registry", "serve", regConf)
	if err := reg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Process.Signal(syscall.SIGTERM); reg.Wait() })
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the registry did not start")
		}
	}

	layout, bundle := filepath.Join(dir, "layout"), filepath.Join(dir, "bundle")
	imgSh(t, fmt.Sprintf(`umoci init --layout %[1]s; umoci new --image %[1]s:t
umoci unpack --image %[1]s:t %[2]s; r=%[2]s/rootfs
mkdir -p $r/bin $r/etc $r/opt/old $r/usr/bin $r/dev
printf 'one\n' > $r/etc/keep; printf 'gone\n' > $r/etc/gone; printf 'v1\n' > $r/etc/replace
printf 'x' > $r/opt/old/file; printf 'tool' > $r/usr/bin/tool; ln $r/usr/bin/tool $r/usr/bin/tool2
printf 'su' > $r/usr/bin/su; chmod 4755 $r/usr/bin/su; ln -s /usr/bin/tool $r/bin/tool
mknod $r/dev/null c 1 3; chown 1000:100 $r/etc/keep
umoci repack --image %[1]s:t %[2]s; rm -rf %[2]s
umoci unpack --image %[1]s:t %[2]s; r=%[2]s/rootfs
rm $r/etc/gone; rm -r $r/opt/old; printf 'v2, longer\n' > $r/etc/replace; chmod 600 $r/etc/replace
umoci repack --image %[1]s:t %[2]s; rm -rf %[2]s
umoci unpack --image %[1]s:t %[2]s
skopeo --insecure-policy copy -q --dest-tls-verify=false oci:%[1]s:t docker://%[3]s/ww/cli:1`, layout, bundle, addr))

	conf, err := config.WriteSandbox(filepath.Join(dir, "sb"), config.SandboxOptions{Ipaddr: "10.0.0.1", Netmask: "255.255.255.0", Port: 9873})
	if err != nil {
		t.Fatal(err)
	}
	out, err := imgRun(t, conf, "image", "import", "--plain-http", "--build", "docker://"+addr+"/ww/cli:1", "cli")
	if err != nil {
		t.Fatalf("wwctl image import: %v\n%s", err, out)
	}
	if !strings.Contains(out, "applying layer 2/2") || !strings.Contains(out, "cli: built image.img") {
		t.Fatalf("output:\n%s", out)
	}
	cfg, _ := config.Load(conf)
	want, got := imgListing(t, filepath.Join(bundle, "rootfs")), imgListing(t, cfg.ImageRootfs("cli"))
	if want != got {
		t.Fatalf("wwctl import differs from umoci unpack:\numoci:\n%s\nwwctl:\n%s", want, got)
	}
	for _, p := range []string{"etc/gone", "opt/old"} {
		if strings.Contains(got, "./"+p+" ") {
			t.Fatalf("%s was deleted by the second layer but is there", p)
		}
	}
	if !strings.Contains(got, "-rwsr-xr-x") || !strings.Contains(got, " 2\n") {
		t.Fatalf("setuid bit or hard link missing:\n%s", got)
	}
	if out, _ := imgRun(t, conf, "image", "show", "-a", "cli"); !strings.Contains(out, "docker://"+addr+"/ww/cli:1") || !strings.Contains(out, "sha256:") {
		t.Fatalf("show does not record the source and digest:\n%s", out)
	}
}
