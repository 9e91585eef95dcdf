package warewulfd

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// The real binary, run the way `wwctl server` runs it without systemd:
// pidfile, SIGHUP reload, SIGTERM stop.
func TestDaemonLifecycle(t *testing.T) {
	testenv.Long(t, "builds warewulfd")
	dir := t.TempDir()
	bin := filepath.Join(dir, "warewulfd")
	build := exec.Command("go", "build", "-tags", "containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper", "-o", bin, "../../cmd/warewulfd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	port := freePort(t)
	file, err := config.WriteSandbox(filepath.Join(dir, "sbx"), config.SandboxOptions{Ipaddr: "127.0.0.1", Netmask: "255.0.0.0", Port: port})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := config.Load(file)
	cfg.Warewulf.ListenAddress = "127.0.0.1"
	cfg.TFTP.Enabled, cfg.DHCP.Enabled = false, false
	data, _ := cfg.Marshal()
	writeFile(t, file, data)
	cfg, err = config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg.NodesConf(), []byte(nodesConf("")))

	no := false
	svc := &Service{Cfg: cfg, Binary: bin, Systemd: &no}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if pid, err := svc.pid(); err == nil { // the test failed midway
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
		}
	})
	if err := svc.Start(); err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Errorf("second start: %v", err)
	}
	if out, err := svc.Status(); err != nil || !strings.Contains(out, "running as PID") {
		t.Errorf("status: %q %v", out, err)
	}
	base := "http://127.0.0.1:" + itoa(port)
	r, err := FetchStatus(context.Background(), StatusURL(cfg))
	if err != nil || len(r.Nodes) != 3 {
		t.Fatalf("status endpoint: %v %+v", err, r)
	}
	if body := httpGet(t, base+"/ipxe/52:54:00:00:00:01"); !strings.Contains(body, "booting n1") {
		t.Errorf("ipxe: %s", body)
	}

	// SIGHUP: nodes.conf is reread (the stat poll would also find it).
	writeFile(t, cfg.NodesConf(), []byte(strings.Replace(nodesConf(""), "  n2:", "  n7:", 1)))
	if err := svc.Reload(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(httpGet(t, base+StatusPath), `"node": "n7"`) {
		if time.Now().After(deadline) {
			t.Fatal("reload did not pick up n7")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.PidFile()); !os.IsNotExist(err) {
		t.Errorf("pidfile left behind: %v", err)
	}
	if _, err := svc.Status(); err != ErrNotRunning {
		t.Errorf("status after stop: %v", err)
	}
	// SIGTERM saved the node status; the next daemon reports it.
	if m, err := readStatusFile(cfg.StatusFile()); err != nil || m["n1"].Stage != "ipxe" {
		t.Errorf("status file after SIGTERM: %v %+v", err, m)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	r, err = FetchStatus(context.Background(), StatusURL(cfg))
	if err != nil || len(r.Nodes) != 3 || r.Nodes[0].Node != "n1" || r.Nodes[0].Stage != "ipxe" {
		t.Errorf("status after a restart: %v %+v", err, r)
	}
	// SIGHUP after a port change: warewulfd moves to the new port.
	newPort := freePort(t)
	cfg2 := *cfg
	cfg2.Warewulf.Port = newPort
	data, _ = cfg2.Marshal()
	writeFile(t, file, data)
	if err := svc.Reload(); err != nil {
		t.Fatal(err)
	}
	newBase := "http://127.0.0.1:" + itoa(newPort)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(newBase + StatusPath); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not move warewulfd to the new port")
		}
	}
	expectRefused(t, "127.0.0.1:"+itoa(port))
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(cfg.DaemonLog())
	if !bytes.Contains(log, []byte("shutting down")) || !bytes.Contains(log, []byte("node=n1")) {
		t.Errorf("daemon log:\n%s", log)
	}
}

// SIGTERM (here: the context) lets a transfer in flight finish.
func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), quiet: true})
	resp, err := http.Get(e.base + "/image/52:54:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 4096)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	// Shut down with the response half read.
	done := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.srv.httpSrv.Shutdown(ctx)
		close(done)
	}()
	time.Sleep(100 * time.Millisecond)
	rest, err := readAllFrom(resp, head)
	if err != nil || !bytes.Equal(rest, e.imageFile("image.img")) {
		t.Fatalf("transfer cut by shutdown: %v, %d bytes", err, len(rest))
	}
	<-done
	if _, err := http.Get(e.base + "/ipxe/52:54:00:00:00:01"); err == nil {
		t.Error("new request served after shutdown")
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
