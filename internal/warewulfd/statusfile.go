package warewulfd

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// The status book is kept in config.StatusFile so that what warewulfd saw
// of each node survives a restart or an upgrade. Requests only touch the
// book in memory: a saver goroutine writes it at most every
// statusSaveInterval, only when something was recorded since its last
// write, and once more on graceful shutdown.

// statusSaveInterval bounds how often the status file is written: a
// running cluster changes it with every runtime-overlay fetch, and a
// minute keeps 10,000 nodes to about 1.3 GB of writes a day; a crash loses
// no more than the nodes' next fetch puts back (a variable so tests need
// not wait for it).
var statusSaveInterval = time.Minute

// statusFileVersion is the status file's format; a file of another version
// is ignored with a warning.
const statusFileVersion = 1

// maxStatusFile bounds what is read of the status file: far more than the
// ~100 bytes per node of a real one.
const maxStatusFile = 256 << 20

type statusFile struct {
	Version int          `json:"version"`
	Nodes   []NodeStatus `json:"nodes"`
}

// loadStatus fills the book from the status file. A missing file is a first
// start; a broken one is logged and ignored, since node status is never a
// reason not to serve nodes.
func (s *Server) loadStatus() {
	path := s.Config().StatusFile()
	m, err := readStatusFile(path)
	if err != nil {
		s.log.Warnf("warewulfd: node status not restored, starting with no node seen: %v", err)
		return
	}
	s.status.mu.Lock()
	s.status.m = m
	s.status.mu.Unlock()
	if len(m) > 0 {
		s.log.Infof("warewulfd: restored the status of %d nodes from %s", len(m), path)
	}
}

// SavedStatus is the report a stopped warewulfd left in cfg.StatusFile, for
// the nodes in db, with the file's modification time (when it was saved).
// The report's Time is now: how long ago a node was seen goes on counting
// while the daemon is down. A missing file is an fs.ErrNotExist error.
func SavedStatus(cfg *config.Config, db *node.DB) (*StatusReport, time.Time, error) {
	path := cfg.StatusFile()
	fi, err := os.Stat(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	m, err := readStatusFile(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	return reportOf(db, m), fi.ModTime(), nil
}

func readStatusFile(path string) (map[string]NodeStatus, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(io.LimitReader(f, maxStatusFile))
	var sf statusFile
	if err := dec.Decode(&sf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		return nil, fmt.Errorf("%s: data after the JSON document", path)
	}
	if sf.Version != statusFileVersion {
		return nil, fmt.Errorf("%s: version %d, not %d", path, sf.Version, statusFileVersion)
	}
	m := make(map[string]NodeStatus, len(sf.Nodes))
	for _, ns := range sf.Nodes {
		if _, err := netip.ParseAddr(ns.IP); ns.Node == "" || !slices.Contains(stageNames[:], ns.Stage) || ns.Time.IsZero() || err != nil {
			return nil, fmt.Errorf("%s: bad entry %+v", path, ns)
		}
		m[ns.Node] = ns
	}
	return m, nil
}

// saveStatus writes the book to the status file if anything was recorded
// since the last write, keeping only nodes still in nodes.conf. A failure is
// logged once until a save succeeds again (every tick retries).
func (s *Server) saveStatus() {
	b := &s.status
	b.saveMu.Lock()
	defer b.saveMu.Unlock()
	b.mu.Lock()
	gen := b.gen
	if gen == b.saved {
		b.mu.Unlock()
		return
	}
	nodes := make([]NodeStatus, 0, len(b.m))
	for _, ns := range b.m {
		nodes = append(nodes, ns)
	}
	b.mu.Unlock()

	st := s.st.Load()
	nodes = slices.DeleteFunc(nodes, func(ns NodeStatus) bool { return st.nodes[ns.Node] == nil })
	slices.SortFunc(nodes, func(x, y NodeStatus) int { return strings.Compare(x.Node, y.Node) })
	path := st.cfg.StatusFile()
	err := safefile.WriteFrom(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 64<<10)
		if err := json.NewEncoder(bw).Encode(statusFile{Version: statusFileVersion, Nodes: nodes}); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		if !b.failing {
			s.log.Warnf("warewulfd: saving node status: %v (retrying every %s)", err, statusSaveInterval)
		}
		b.failing = true
		return
	}
	if b.failing {
		s.log.Infof("warewulfd: node status saved to %s again", path)
	}
	b.failing = false
	b.saved = gen
}

// startStatusSaver saves the book every statusSaveInterval while requests
// change it. The function it returns stops the saver and saves a last time.
func (s *Server) startStatusSaver() (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(statusSaveInterval)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				s.saveStatus()
			}
		}
	}()
	return func() {
		close(quit)
		<-done
		s.saveStatus()
	}
}
