package node

import "testing"

// FuzzEdit: any flag value and selector, set or unset on any record, gives
// an error or a record that validates its input and marshals, never a
// panic.
func FuzzEdit(f *testing.F) {
	f.Add([]byte("network devices: {default: {ipaddr: 10.0.0.1}}\ndisks: {/dev/vda: {partitions: {p: {}}}}\n"), uint8(3), "UNSET", "default", "/dev/vda", "p", "var")
	f.Add([]byte(""), uint8(20), "0.0.0.0", "eth0", "", "", "")
	f.Add([]byte("tags: {a: b}\n"), uint8(40), "true", "", "/dev/sda", "root", "/dev/disk/by-partlabel/root")
	f.Fuzz(func(t *testing.T, rec []byte, which uint8, value, net, disk, part, fs string) {
		recs, err := ParseRecords(append([]byte("x:\n  "), indent(rec)...), "node")
		if err != nil {
			return
		}
		c := recs["x"]
		s := Specs[int(which)%len(Specs)]
		sel := Selector{Net: net, Disk: disk, Part: part, FS: fs}
		e := &Edit{Values: map[string]string{s.Lopt: value}, Order: []string{s.Lopt}, Sel: sel,
			TagsAdd: map[string]string{value: value}, NetDel: net, PartDel: part}
		if e.Prepare() == nil {
			_ = e.Apply(Clone(c), 0, map[string]bool{"ipaddr": true})
		}
		u := &Unset{Fields: []string{s.Lopt}, Sel: sel, NetGiven: net != "", Tags: []string{value}}
		if u.Check() == nil {
			_ = u.Apply(Clone(c))
		}
		db := &DB{Profiles: map[string]*Conf{}, Nodes: map[string]*Conf{"x": c}}
		_ = db.Validate()
		if _, err := db.Marshal(); err != nil {
			t.Fatal(err)
		}
	})
}

// indent puts a record's YAML under its name.
func indent(b []byte) []byte {
	var out []byte
	for _, c := range b {
		out = append(out, c)
		if c == '\n' {
			out = append(out, ' ', ' ')
		}
	}
	return out
}
