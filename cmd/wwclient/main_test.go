package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/archive"
)

// The test binary runs main() itself when asked to, so the signal test
// exercises the real program.
func TestMain(m *testing.M) {
	if os.Getenv("WWCLIENT_RUN_MAIN") == "1" {
		os.Args = append([]string{"wwclient"}, strings.Fields(os.Getenv("WWCLIENT_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSIGTERMStopsCleanly(t *testing.T) {
	var buf bytes.Buffer
	w, _ := archive.NewWriter(&buf, archive.Gzip)
	w.WriteFile(&archive.Header{Name: "etc/motd", Mode: archive.TypeReg | 0o644, Nlink: 1}, []byte("hello\n"))
	w.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { rw.Write(buf.Bytes()) }))
	defer srv.Close()
	host, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	dir := t.TempDir()
	conf := filepath.Join(dir, "config")
	os.WriteFile(conf, []byte("controller: "+host+"\nport: "+port+"\nhwaddr: 52:54:00:00:00:01\nsecure: false\nupdate interval: 60\n"), 0o600)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "WWCLIENT_RUN_MAIN=1", "WWCLIENT_ARGS=--config "+conf+" --root "+dir+"/root")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	motd := filepath.Join(dir, "root/etc/motd")
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(motd); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b, err := os.ReadFile(motd); err != nil || string(b) != "hello\n" {
		t.Fatalf("motd not applied (%v): %s", err, out.String())
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatal("wwclient did not stop on SIGTERM")
	}
	if !strings.Contains(out.String(), "wwclient: stopped") {
		t.Errorf("no stop message:\n%s", out.String())
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}
