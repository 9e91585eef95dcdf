package testenv

import (
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Redfish is a small Redfish service on loopback, over TLS: one computer
// system with a power state and the ComputerSystem.Reset action, behind
// basic authentication, as BMCs serve it (no Redfish emulator is packaged).
type Redfish struct {
	Host, Port string
	CAFile     string // the server's certificate, PEM
	mu         sync.Mutex
	power      string
	resets     []string
}

// StartRedfish starts the service with the power off; it stops when the
// test ends.
func StartRedfish(t testing.TB, user, password string) *Redfish {
	t.Helper()
	r := &Redfish{power: "Off"}
	srv := httptest.NewTLSServer(r.handler(user, password))
	t.Cleanup(srv.Close)
	r.Host, r.Port, _ = net.SplitHostPort(srv.Listener.Addr().String())
	r.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(r.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// Power is the system's PowerState.
func (r *Redfish) Power() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.power
}

// SetPower sets the PowerState the service reports.
func (r *Redfish) SetPower(p string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.power = p
}

// Resets are the ResetType values posted, in order.
func (r *Redfish) Resets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.resets...)
}

const redfishSystem = "/redfish/v1/Systems/System.Embedded.1"

func (r *Redfish) handler(user, password string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != user || p != password {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": "bad credentials"}})
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case req.Method == http.MethodGet && req.URL.Path == "/redfish/v1/Systems":
			json.NewEncoder(w).Encode(map[string]any{"Members": []any{map[string]string{"@odata.id": redfishSystem}}})
		case req.Method == http.MethodGet && req.URL.Path == redfishSystem:
			json.NewEncoder(w).Encode(map[string]any{
				"PowerState": r.power,
				"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
					"target": redfishSystem + "/Actions/ComputerSystem.Reset"}},
			})
		case req.Method == http.MethodPost && req.URL.Path == redfishSystem+"/Actions/ComputerSystem.Reset":
			var body struct{ ResetType string }
			if err := json.NewDecoder(req.Body).Decode(&body); err != nil || req.Header.Get("Content-Type") != "application/json" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			switch body.ResetType {
			case "On":
				r.power = "On"
			case "ForceOff", "GracefulShutdown":
				r.power = "Off"
			case "ForceRestart", "PowerCycle":
			default:
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": "unknown ResetType"}})
				return
			}
			r.resets = append(r.resets, body.ResetType)
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
}
