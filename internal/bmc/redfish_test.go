package bmc

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// redfishService is a small Redfish service: one computer system with a
// power state and the ComputerSystem.Reset action, behind basic auth, as
// BMCs serve it (no Redfish emulator is packaged).
type redfishService struct {
	mu     sync.Mutex
	power  string
	resets []string
}

func (s *redfishService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != "root" || p != "calvin" {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": "bad credentials"}})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/redfish/v1/Systems":
		json.NewEncoder(w).Encode(map[string]any{"Members": []any{map[string]string{"@odata.id": "/redfish/v1/Systems/System.Embedded.1"}}})
	case r.Method == http.MethodGet && r.URL.Path == "/redfish/v1/Systems/System.Embedded.1":
		json.NewEncoder(w).Encode(map[string]any{
			"PowerState": s.power,
			"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
				"target": "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset"}},
		})
	case r.Method == http.MethodPost && r.URL.Path == "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset":
		var body struct{ ResetType string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.resets = append(s.resets, body.ResetType)
		switch body.ResetType {
		case "On":
			s.power = "On"
		case "ForceOff", "GracefulShutdown":
			s.power = "Off"
		case "ForceRestart", "PowerCycle":
		default:
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": "unknown ResetType"}})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func TestRedfishPower(t *testing.T) {
	svc := &redfishService{power: "Off"}
	srv := httptest.NewTLSServer(svc)
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	target := func(name, pass string, tags map[string]string) Target {
		tg, err := NewTarget(&node.Node{Name: name, Conf: node.Conf{Ipmi: &node.Ipmi{
			Ipaddr: host, Port: port, Interface: Redfish, UserName: "root", Password: pass, Tags: tags,
		}}}, "/x")
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	good := target("n1", "calvin", map[string]string{"cacert": ca})
	ctx := context.Background()
	if r, err := Power(ctx, good, Status); err != nil || r.Power != "off" {
		t.Fatalf("status: %+v %v", r, err)
	}
	for _, a := range []Action{On, Cycle, Reset, Soft, Off} {
		if _, err := Power(ctx, good, a); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	if got := strings.Join(svc.resets, ","); got != "On,PowerCycle,ForceRestart,GracefulShutdown,ForceOff" {
		t.Errorf("reset types sent: %s", got)
	}
	svc.power = "On"
	if r, err := Power(ctx, good, Status); err != nil || r.Power != "on" {
		t.Errorf("status: %+v %v", r, err)
	}

	res := Each(ctx, []Target{
		target("n2", "wrong", map[string]string{"cacert": ca}),
		target("n3", "calvin", nil), // the test CA is not among the system's roots
		target("n4", "calvin", map[string]string{"insecure": "true"}),
	}, 8, func(ctx context.Context, t Target) (Reply, error) { return Power(ctx, t, Status) })
	if !strings.Contains(res[0].Error, "wrong username or password") || strings.Contains(res[0].Error, "wrong\"") {
		t.Errorf("wrong password: %+v", res[0])
	}
	if res[1].Err == nil || !strings.Contains(res[1].Error, "certificate") {
		t.Errorf("unknown certificate: %+v", res[1])
	}
	if res[2].Err != nil || res[2].Power != "on" {
		t.Errorf("insecure: %+v", res[2])
	}
	if _, err := Sensors(ctx, good, false); err == nil {
		t.Error("sensors over redfish did not fail")
	}
	if line, _ := PowerCommand(good, On); !strings.Contains(line, `"ResetType":"On"`) || strings.Contains(line, "calvin") {
		t.Errorf("--show: %s", line)
	}
}
