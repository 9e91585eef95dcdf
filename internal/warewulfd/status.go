package warewulfd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// StatusPath is the JSON status endpoint.
const StatusPath = "/status"

// StatusReport is what StatusPath returns: the server's clock and, for
// every node in nodes.conf, the last stage it fetched.
type StatusReport struct {
	Time  time.Time    `json:"time"`
	Nodes []NodeStatus `json:"nodes"`
}

// NodeStatus is one node's last successful request. Stage is empty for a
// node never seen (warewulfd keeps what it saw across restarts in
// config.StatusFile).
type NodeStatus struct {
	Node  string    `json:"node"`
	Stage string    `json:"stage,omitempty"`
	Time  time.Time `json:"time,omitzero"`
	IP    string    `json:"ip,omitempty"`
}

// statusBook is the last request of each node. gen counts changes, so the
// saver (statusfile.go) writes the book only when it moved since the last
// save it made.
type statusBook struct {
	mu  sync.Mutex
	m   map[string]NodeStatus
	gen uint64

	saveMu  sync.Mutex // one save at a time; guards saved and failing
	saved   uint64     // gen at the last successful save
	failing bool       // the last save failed (and was logged)
}

func (b *statusBook) record(name string, stage Stage, ip string, t time.Time) {
	b.mu.Lock()
	if b.m == nil {
		b.m = map[string]NodeStatus{}
	}
	b.m[name] = NodeStatus{Node: name, Stage: stage.String(), Time: t, IP: ip}
	b.gen++
	b.mu.Unlock()
}

func (s *Server) statusReport() *StatusReport {
	st := s.st.Load()
	s.status.mu.Lock()
	defer s.status.mu.Unlock()
	return reportOf(st.db, s.status.m)
}

// reportOf is the report, at the present time, of every node in db (in
// name order) with what seen holds of it.
func reportOf(db *node.DB, seen map[string]NodeStatus) *StatusReport {
	names := db.NodeNames()
	r := &StatusReport{Time: time.Now().UTC(), Nodes: make([]NodeStatus, 0, len(names))}
	for _, name := range names {
		ns, ok := seen[name]
		if !ok {
			ns = NodeStatus{Node: name}
		}
		r.Nodes = append(r.Nodes, ns)
	}
	return r
}

func (s *Server) serveStatus(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(s.statusReport())
}

// StatusURL is where a warewulfd configured by cfg answers StatusPath, seen
// from the controller itself.
func StatusURL(cfg *config.Config) string {
	host := cfg.Warewulf.ListenAddress
	if ip := net.ParseIP(host); host == "" || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(cfg.Warewulf.Port)) + StatusPath
}

// ErrNotAnswering is FetchStatus's error when nothing answers at the URL
// (warewulfd stopped, or listening elsewhere).
var ErrNotAnswering = errors.New("warewulfd is not answering")

// FetchStatus asks a running warewulfd for its status report.
func FetchStatus(ctx context.Context, url string) (*StatusReport, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w", ErrNotAnswering, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	var r StatusReport
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<20)).Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return &r, nil
}
