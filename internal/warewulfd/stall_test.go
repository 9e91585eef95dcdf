package warewulfd

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// shortStall makes responses that send nothing for d be cut.
func shortStall(t *testing.T, d time.Duration) {
	old := stallTimeout
	stallTimeout = d
	t.Cleanup(func() { stallTimeout = old })
}

// TestSlowLinkTransfersComplete: four image downloads share a 1 Mbit/s
// link (tc in a namespace); each goes far slower than any fixed minimum
// rate, yet makes progress, so all four complete. A fixed deadline per
// response (one minute plus a second per MiB, here shortened as the stall
// timeout is) cut them all.
func TestSlowLinkTransfersComplete(t *testing.T) {
	needRoot(t)
	needCmd(t, "tc")
	testenv.Long(t, "1 MiB through a 1 Mbit/s link")
	shortStall(t, 2*time.Second)
	srvNS, cliNS := testenv.Netns(t, "slowsrv"), testenv.Netns(t, "slowcli")
	testenv.Veth(t, srvNS, "s0", cliNS, "c0")
	testenv.Run(t, "ip", "-n", srvNS, "addr", "add", "10.77.9.1/24", "dev", "s0")
	testenv.Run(t, "ip", "-n", cliNS, "addr", "add", "10.77.9.2/24", "dev", "c0")
	testenv.Run(t, "ip", "netns", "exec", srvNS, "tc", "qdisc", "add", "dev", "s0", "root", "tbf", "rate", "1mbit", "burst", "32kbit", "latency", "400ms")
	const size = 256 << 10
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), imageSize: size, listenNetns: srvNS, httpAddr: "10.77.9.1:9873"})
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := testenv.InNetns(cliNS, func() (err error) {
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	start := time.Now()
	var wg sync.WaitGroup
	got := make([]string, 4)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get("http://10.77.9.1:9873/image/52:54:00:00:00:01")
			if err != nil {
				got[i] = err.Error()
				return
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got[i] = fmt.Sprintf("%s, %d of %d bytes, %v", resp.Status, n, size, err)
		}()
	}
	wg.Wait()
	t.Logf("4 downloads of %d KiB through 1 Mbit/s in %s", size>>10, time.Since(start).Round(time.Millisecond))
	for i, g := range got {
		if g != fmt.Sprintf("200 OK, %d of %d bytes, <nil>", size, size) {
			t.Errorf("download %d: %s", i+1, g)
		}
	}
	if strings.Contains(e.logs.String(), "cut after") {
		t.Errorf("a transfer was cut:\n%s", e.logs.String())
	}
}

// TestStalledTransferCut: a client that stops reading is cut once nothing
// has moved for the stall timeout, and the log line says the transfer
// failed, with the bytes sent and the bytes it should have had.
func TestStalledTransferCut(t *testing.T) {
	shortStall(t, time.Second)
	const size = 24 << 20
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), imageSize: size})
	c, err := net.Dial("tcp", e.srv.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(c, "GET /image/52:54:00:00:00:01 HTTP/1.1\r\nHost: x\r\n\r\n")
	head := make([]byte, 1000)
	if _, err := io.ReadFull(c, head); err != nil {
		t.Fatal(err)
	}
	// Then it reads nothing more.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.logs.String(), "cut after") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	e.awaitLog(t, "level=warning", "failed: cut after", fmt.Sprintf("of %d bytes", size), "stage=image", "status=200")
	_, body := e.get("/metrics")
	if !strings.Contains(string(body), `warewulfd_http_errors_total{stage="image"} 1`) {
		t.Errorf("the cut transfer is not counted as an error:\n%s", body)
	}
}
