package warewulfd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/overlay"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// floodChild opens WWTEST_FLOOD_N connections from WWTEST_FLOOD_FROM to
// WWTEST_FLOOD, sends one request on each and keeps them all open, idle,
// until its stdin closes. It runs in a process of its own: each has its
// own file-descriptor limit.
func floodChild() int {
	n, _ := strconv.Atoi(os.Getenv("WWTEST_FLOOD_N"))
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(os.Getenv("WWTEST_FLOOD_FROM"))}, Timeout: 3 * time.Second}
	var conns []net.Conn
	failed := 0
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", os.Getenv("WWTEST_FLOOD"))
		if err != nil {
			failed++
			continue
		}
		c.Write([]byte("GET /ipxe/52:54:00:00:00:01 HTTP/1.1\r\nHost: x\r\n\r\n"))
		conns = append(conns, c)
	}
	fmt.Printf("opened %d, %d failed\n", len(conns), failed)
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// TestConnectionFlood: 20,000 idle keep-alive connections from one
// address (two processes of 10,000, as the audit ran it) while a node
// boots through every stage from its own address, TFTP included: the node
// gets every byte, warewulfd's file descriptors stay few, and the cap is
// logged.
func TestConnectionFlood(t *testing.T) {
	testenv.Long(t, "20,000 connections")
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	testenv.Need(t, "RLIMIT_NOFILE of at least 10,100 (each flood process opens 10,000)", lim.Max >= 10100)
	ipxe, err := os.ReadFile("/usr/lib/ipxe/undionly.kpxe")
	testenv.Need(t, "the ipxe package (test/deps.sh)", err == nil)
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), tftp: true})
	want := map[string][]byte{
		"kernel":  e.imageFile("vmlinuz"),
		"image":   e.imageFile("image.img"),
		"kmods":   e.imageFile("kmods.img"),
		"system":  e.nodeOverlay("n1", overlay.System, 5000),
		"runtime": e.nodeOverlay("n1", overlay.Runtime, 3000),
	}
	for i := 0; i < 2; i++ {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "WWTEST_FLOOD="+e.srv.HTTPAddr().String(), "WWTEST_FLOOD_FROM=127.0.0.66", "WWTEST_FLOOD_N=10000")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			t.Fatalf("flood process: %v", err)
		}
		t.Logf("flood process %d (pid %d): %s", i+1, cmd.Process.Pid, strings.TrimSpace(line))
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	t.Logf("test process (warewulfd) holds %d file descriptors", len(fds))
	if len(fds) > 2000 {
		t.Errorf("warewulfd holds %d file descriptors under the flood", len(fds))
	}
	// The node boots: the iPXE binary over TFTP (a socket per transfer,
	// so it needs free descriptors too), then the iPXE script, kernel,
	// image, kmods, system and runtime overlays, each on a connection of
	// its own.
	if got, err := goTFTP(t, e, "undionly.kpxe", 1468); err != nil || !bytes.Equal(got, ipxe) {
		t.Fatalf("tftp during the flood: %v, %d of %d bytes", err, len(got), len(ipxe))
	}
	c := clientFrom("127.0.0.11", 0)
	resp, err := c.Get(e.base + "/ipxe/52:54:00:00:00:01")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("ipxe during the flood: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, stage := range []string{"kernel", "image", "kmods", "system", "runtime"} {
		start := time.Now()
		resp, err := c.Get(e.base + "/" + stage + "/52:54:00:00:00:01")
		if err != nil {
			t.Fatalf("%s during the flood: %v", stage, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, want[stage]) {
			t.Fatalf("%s during the flood: %s, %d of %d bytes, %v", stage, resp.Status, len(body), len(want[stage]), err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %s during the flood", stage, d)
		}
	}
	e.awaitLog(t, "level=warning", "127.0.0.66", "at the cap of 128 per address")
}
