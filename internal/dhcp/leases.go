package dhcp

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sort"
	"time"

	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// Lease is a dynamic address handed to a MAC that nodes.conf does not know.
// Declined addresses are kept as leases with an empty MAC until they expire.
type Lease struct {
	MAC      string    `json:"mac"`
	IP       string    `json:"ip"`
	Hostname string    `json:"hostname,omitempty"`
	Expires  time.Time `json:"expires"`
	// Offered marks an address reserved by an OFFER that the client has
	// not yet REQUESTed; it is not written to disk.
	Offered bool `json:"-"`
}

// pool is the dynamic range and its leases, persisted in one JSON file.
type pool struct {
	start, end uint32 // inclusive; start > end means no range
	file       string
	byIP       map[uint32]*Lease
	byMAC      map[string]*Lease
}

func ip4(ip net.IP) uint32 {
	v := ip.To4()
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func ipOf(v uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, v)
	return ip
}

func newPool(start, end net.IP, file string) (*pool, error) {
	p := &pool{start: 1, end: 0, file: file, byIP: map[uint32]*Lease{}, byMAC: map[string]*Lease{}}
	if start != nil && end != nil {
		p.start, p.end = ip4(start), ip4(end)
		if p.start > p.end {
			return nil, fmt.Errorf("dhcp: range start %s is after range end %s", start, end)
		}
	}
	if err := p.load(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pool) hasRange() bool { return p.start <= p.end }

func (p *pool) inRange(v uint32) bool { return p.hasRange() && v >= p.start && v <= p.end }

func (p *pool) load() error {
	data, err := os.ReadFile(p.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var leases []Lease
	if err := json.Unmarshal(data, &leases); err != nil {
		return fmt.Errorf("%s: %w", p.file, err)
	}
	now := time.Now()
	for i := range leases {
		l := leases[i]
		v := ip4(net.ParseIP(l.IP))
		if v == 0 || !l.Expires.After(now) {
			continue
		}
		p.put(&l, v)
	}
	return nil
}

func (p *pool) put(l *Lease, v uint32) {
	if old, ok := p.byIP[v]; ok && old.MAC != "" {
		delete(p.byMAC, old.MAC)
	}
	if old, ok := p.byMAC[l.MAC]; ok && l.MAC != "" {
		delete(p.byIP, ip4(net.ParseIP(old.IP)))
	}
	p.byIP[v] = l
	if l.MAC != "" {
		p.byMAC[l.MAC] = l
	}
}

func (p *pool) drop(l *Lease) {
	delete(p.byIP, ip4(net.ParseIP(l.IP)))
	if l.MAC != "" && p.byMAC[l.MAC] == l {
		delete(p.byMAC, l.MAC)
	}
}

// save writes the committed leases atomically.
func (p *pool) save() error {
	out := make([]Lease, 0, len(p.byIP))
	now := time.Now()
	for _, l := range p.byIP {
		if !l.Offered && l.Expires.After(now) {
			out = append(out, *l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return ip4(net.ParseIP(out[i].IP)) < ip4(net.ParseIP(out[j].IP)) })
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return safefile.WriteFile(p.file, append(data, '\n'), 0o644)
}

// free reports whether v may be handed to mac: in the range, not a node's,
// not the server's, and not leased (or declined) to anyone else.
func (p *pool) free(v uint32, mac string, taken func(net.IP) bool, now time.Time) bool {
	if !p.inRange(v) || taken(ipOf(v)) {
		return false
	}
	l, ok := p.byIP[v]
	return !ok || l.MAC == mac || !l.Expires.After(now)
}

// pick chooses an address for mac: its current lease, else the address it
// asks for, else the lowest free one. It returns nil when the range is full.
func (p *pool) pick(mac string, want net.IP, taken func(net.IP) bool, now time.Time) net.IP {
	if l, ok := p.byMAC[mac]; ok {
		if v := ip4(net.ParseIP(l.IP)); p.free(v, mac, taken, now) {
			return ipOf(v)
		}
	}
	if v := ip4(want); v != 0 && p.free(v, mac, taken, now) {
		return ipOf(v)
	}
	if !p.hasRange() {
		return nil
	}
	for v := p.start; ; v++ {
		if p.free(v, mac, taken, now) {
			return ipOf(v)
		}
		if v == p.end {
			return nil
		}
	}
}
