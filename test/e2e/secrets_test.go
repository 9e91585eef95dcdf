package e2e

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// assetTag is akey's asset key, which its VM carries as its SMBIOS chassis
// asset tag (qemu -smbios type=3,asset=...).
const assetTag = "e2e-tag-akey"

// TestBootAssetTag: akey has an asset key. Its VM, with that asset tag in
// its firmware, boots: iPXE sends ${asset} on every request, wwclient
// reads the tag from /sys and gets the runtime overlay. The same MAC with
// a wrong tag gets 403 at its first request, and the log says why. From
// another address of the network, with akey's MAC, no route gives anything
// of akey, and n1's public system overlay (no asset key) holds no secret.
func TestBootAssetTag(t *testing.T) {
	e := getEnv(t)
	n := clusterNode("akey")
	v := bootVM(t, e.ns, n.name, n.mac, vmOpts{asset: assetTag})
	v.waitFor(t, reRuntime, busyboxBoot)
	for _, stage := range []string{"ipxe", "kernel", "image", "kmods", "system", "runtime"} {
		e.daemonSaid(t, `hwaddr="`+n.mac+`" ip=`+regexp.QuoteMeta(n.ip)+` node=akey stage=`+stage+` status=200`)
	}
	v.p.stop()

	t.Run("WrongTag", func(t *testing.T) {
		from := e.wwd.out.len()
		w := bootVM(t, e.ns, n.name+"-wrong", n.mac, vmOpts{asset: "not-the-tag"})
		re := regexp.MustCompile(`level=warning msg="refused: asset key does not match the node's".*hwaddr="` + n.mac + `".*node=akey stage=ipxe status=403`)
		if _, _, ok := e.wwd.out.waitFor(re, from, busyboxBoot, nil); !ok {
			t.Fatalf("no refusal of akey's MAC with a wrong tag in warewulfd's log:\n%s", e.wwd.out.tail(20))
		}
		w.p.stop()
		if strings.Contains(e.wwd.out.tail(2000), assetTag) {
			t.Error("warewulfd logged the asset key")
		}
	})

	t.Run("Stranger", func(t *testing.T) {
		stranger := prefix + "201"
		run(t, nil, e.ns.exec("ip", "addr", "add", stranger+"/24", "dev", e.ns.bridge)...)
		defer runErr(nil, e.ns.exec("ip", "addr", "del", stranger+"/24", "dev", e.ns.bridge)...)
		base := "http://" + controllerIP + ":" + itoa(e.cfg.Warewulf.Port)
		dir := t.TempDir()
		for _, route := range []string{"ipxe", "kernel", "image", "kmods", "system", "runtime", "stage1", "initramfs"} {
			for _, q := range []string{"", "?assetkey=guess"} {
				out := filepath.Join(dir, route)
				os.Remove(out)
				msg, err := runErr(nil, e.ns.exec("curl", "-sS", "--interface", stranger, "-o", out, "-w", "%{http_code}",
					base+"/"+route+"/"+n.mac+q)...)
				if err != nil || (msg != "401" && msg != "403") {
					t.Errorf("/%s/%s%s from %s: %q %v, want 401 or 403", route, n.mac, q, stranger, msg, err)
				}
				if data, _ := os.ReadFile(out); len(data) > 100 {
					t.Errorf("/%s/%s%s: %d bytes to a stranger", route, n.mac, q, len(data))
				}
			}
		}
		// n1 has no asset key: its system overlay is public, and holds no
		// private key.
		n1 := clusterNode("n1")
		out := filepath.Join(dir, "n1-system")
		run(t, nil, e.ns.exec("curl", "-sSf", "--interface", stranger, "-o", out, base+"/system/"+n1.mac)...)
		data, _ := os.ReadFile(out)
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(plain, []byte("PRIVATE KEY")) || bytes.Contains(plain, []byte("etc/shadow\x00")) {
			t.Error("n1's system overlay holds a private key or shadow")
		}
		if !bytes.Contains(plain, []byte("ssh_host_ed25519_key.pub")) && !bytes.Contains(plain, []byte("warewulf/config")) {
			t.Errorf("n1's system overlay looks empty (%d bytes)", len(plain))
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestBootRuntimeOverTLS: a controller with `tls: true` (a second
// warewulfd on the same sandbox with its own provision tree, in a
// namespace of its own) and the keys of `wwctl configure tls`. A BIOS node
// boots; iPXE stays on HTTP, and wwclient fetches the runtime overlay over
// HTTPS, trusting the CA its system overlay brought: warewulfd serves the
// runtime overlay over HTTPS only, so its 200 is the proof.
func TestBootRuntimeOverTLS(t *testing.T) {
	e := getEnv(t)
	conf := filepath.Join(e.dir, "warewulf-tls.conf")
	data, err := os.ReadFile(e.conf)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, conf, string(data), 0o644)
	e.configure(t, conf, func(c *config.Config) {
		c.Warewulf.TLS = true
		c.Paths.WWProvisiondir = filepath.Join(e.dir, "provision-tls")
	})
	vars := []string{config.EnvVar + "=" + conf}
	run(t, vars, e.tool("wwctl"), "configure", "tls")
	run(t, vars, e.tool("wwctl"), "image", "build", "busybox")
	n := clusterNode("n4")
	run(t, vars, e.tool("wwctl"), "overlay", "build", n.name)

	ns := newNetns(t, "tls")
	t.Cleanup(ns.del)
	wwd := e.startWarewulfd(t, ns, vars, "warewulfd-tls")
	t.Cleanup(wwd.stop)
	if _, _, ok := wwd.out.waitFor(regexp.MustCompile(`warewulfd: https on .*:9874`), 0, 5*time.Second, nil); !ok {
		t.Fatalf("no HTTPS listener:\n%s", wwd.out.tail(20))
	}
	v := bootVM(t, ns, n.name+"-tls", n.mac, vmOpts{})
	v.waitFor(t, reRuntime, busyboxBoot)
	re := regexp.MustCompile(`hwaddr="` + n.mac + `" ip=` + regexp.QuoteMeta(n.ip) + ` node=n4 stage=runtime status=200`)
	if _, _, ok := wwd.out.waitFor(re, 0, 5*time.Second, nil); !ok {
		t.Fatalf("no runtime overlay served to n4 over HTTPS:\n%s", wwd.out.tail(20))
	}
	// The iPXE script left the runtime overlay out (iPXE cannot check the CA).
	if _, _, ok := wwd.out.waitFor(regexp.MustCompile(`refused: tls is on`), 0, time.Millisecond, nil); ok {
		t.Errorf("a plain-HTTP runtime request reached warewulfd:\n%s", wwd.out.tail(20))
	}
}
