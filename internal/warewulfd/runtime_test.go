package warewulfd

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/overlay"
)

// Secure mode: n1 lives at 127.0.0.11, its runtime overlay carries secrets.
func runtimeEnv(t *testing.T, assetKey string) (*testEnv, []byte) {
	needRoot(t) // binding a client to a port below 1024
	e := newEnv(t, envOptions{nodesConf: nodesConf(assetKey), secure: true})
	return e, e.nodeOverlay("n1", overlay.Runtime, 4096)
}

func runtimeFrom(t *testing.T, e *testEnv, ip string, port int, query string) (int, []byte) {
	t.Helper()
	resp, err := clientFrom(ip, port).Get(e.base + "/runtime/52:54:00:00:00:01" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestRuntimeServedFromPrivilegedPortAndNodeIP(t *testing.T) {
	e, want := runtimeEnv(t, "s3cret")
	code, body := runtimeFrom(t, e, "127.0.0.11", privilegedPort(t, "127.0.0.11"), "?assetkey=s3cret")
	if code != 200 || !bytes.Equal(body, want) {
		t.Fatalf("%d, %d bytes (want 200, %d bytes)", code, len(body), len(want))
	}
}

func TestRuntimeRefusedFromUnprivilegedPort(t *testing.T) {
	e, _ := runtimeEnv(t, "")
	code, body := runtimeFrom(t, e, "127.0.0.11", 0, "")
	if code != http.StatusForbidden || len(body) > 100 {
		t.Fatalf("%d, %d bytes", code, len(body))
	}
	wantLog(t, e, "node=n1", "ip=127.0.0.11", "is not privileged")
}

func TestRuntimeRefusedFromOtherIP(t *testing.T) {
	e, _ := runtimeEnv(t, "")
	// 127.0.0.12 is n2's address, not n1's.
	code, _ := runtimeFrom(t, e, "127.0.0.12", privilegedPort(t, "127.0.0.12"), "")
	if code != http.StatusForbidden {
		t.Fatalf("%d", code)
	}
	wantLog(t, e, "node=n1", "ip=127.0.0.12", "is not one of the node's addresses")
}

func TestRuntimeRefusedWithWrongAssetKey(t *testing.T) {
	e, _ := runtimeEnv(t, "s3cret")
	for q, want := range map[string]int{"?assetkey=wrong": http.StatusForbidden, "": http.StatusUnauthorized} {
		code, _ := runtimeFrom(t, e, "127.0.0.11", privilegedPort(t, "127.0.0.11"), q)
		if code != want {
			t.Fatalf("%q: %d, want %d", q, code, want)
		}
	}
	wantLog(t, e, "node=n1", "ip=127.0.0.11", "asset key does not match")
	wantLog(t, e, "node=n1", "ip=127.0.0.11", "asset key missing")
}

// In secure mode the iPXE script leaves the runtime overlay out; without
// secure mode anyone with the asset tag may fetch it.
func TestRuntimeNotSecure(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf("s3cret"), secure: false})
	want := e.nodeOverlay("n1", overlay.Runtime, 100)
	resp, body := e.get("/runtime/52:54:00:00:00:01?assetkey=s3cret")
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("%s", resp.Status)
	}
}

func wantLog(t *testing.T, e *testEnv, parts ...string) {
	t.Helper()
	e.awaitLog(t, append([]string{"refused"}, parts...)...)
}
