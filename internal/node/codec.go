package node

import (
	"bytes"
	"fmt"
	"regexp"
	"runtime"
	"sync"

	"gopkg.in/yaml.v3"
)

// nodes.conf is decoded and encoded one record at a time: yaml.v3 checks a
// mapping's keys for duplicates pairwise and copies its event queue, both
// quadratic in the size of one mapping, which made a 10,000-node file take
// seconds. Per record, the work is linear and spreads over every core.

// decode parses a nodes.conf document without validating it; legacy and
// unknown keys are warned about.
func decode(data []byte) (*DB, error) {
	db, notes, err := ParseLegacy(data)
	for _, n := range notes {
		warnOnce("%s", n)
	}
	return db, err
}

// ParseLegacy reads a nodes.conf of any Warewulf 4 release without
// validating it: legacy keys are moved into place and unknown keys
// dropped, and the notes say so, one line each.
func ParseLegacy(data []byte) (*DB, Notes, error) {
	db := &DB{Profiles: map[string]*Conf{}, Nodes: map[string]*Conf{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		return db, nil, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("invalid YAML: line %d: the document must be a mapping with nodeprofiles and nodes", root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i], root.Content[i+1]
		var err error
		switch key.Value {
		case "nodeprofiles":
			err = decodeRecords(val, db.Profiles, "profile")
		case "nodes":
			err = decodeRecords(val, db.Nodes, "node")
		default:
			var v any
			if err = val.Decode(&v); err == nil {
				if db.Extra == nil {
					db.Extra = map[string]any{}
				}
				db.Extra[key.Value] = v
			}
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return db, db.upgradeLegacy(), nil
}

func decodeRecords(m *yaml.Node, into map[string]*Conf, noun string) error {
	if m.Kind == yaml.ScalarNode && (m.Tag == "!!null" || m.Value == "") {
		return nil
	}
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("invalid YAML: line %d: %ss must be a mapping of names", m.Line, noun)
	}
	n := len(m.Content) / 2
	confs := make([]*Conf, n)
	errs := make([]error, n)
	parallel(n, func(i int) {
		confs[i] = &Conf{}
		errs[i] = m.Content[2*i+1].Decode(confs[i])
	})
	for i := 0; i < n; i++ {
		key := m.Content[2*i]
		if errs[i] != nil {
			return fmt.Errorf("invalid YAML: %s %s: %w", noun, key.Value, errs[i])
		}
		if _, dup := into[key.Value]; dup {
			return fmt.Errorf("invalid YAML: line %d: %s %s appears twice", key.Line, noun, key.Value)
		}
		into[key.Value] = confs[i]
	}
	return nil
}

// parallel runs f(0..n-1) spread over every core.
func parallel(n int, f func(i int)) {
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				f(i)
			}
		}(w)
	}
	wg.Wait()
}

// encode renders the database with two-space indents, records sorted.
func encode(db *DB) ([]byte, error) {
	var buf bytes.Buffer
	for _, sec := range []struct {
		key  string
		recs map[string]*Conf
	}{{"nodeprofiles", db.Profiles}, {"nodes", db.Nodes}} {
		if err := encodeSection(&buf, sec.key, sec.recs); err != nil {
			return nil, err
		}
	}
	if len(db.Extra) > 0 {
		extra, err := marshalIndent(db.Extra)
		if err != nil {
			return nil, err
		}
		buf.Write(extra)
	}
	return buf.Bytes(), nil
}

func encodeSection(buf *bytes.Buffer, key string, recs map[string]*Conf) error {
	if len(recs) == 0 {
		buf.WriteString(key + ": {}\n")
		return nil
	}
	names := sortedKeys(recs)
	bodies := make([][]byte, len(names))
	errs := make([]error, len(names))
	parallel(len(names), func(i int) { bodies[i], errs[i] = marshalIndent(recs[names[i]]) })
	buf.WriteString(key + ":\n")
	for i, name := range names {
		if errs[i] != nil {
			return fmt.Errorf("%s %s: %w", key, name, errs[i])
		}
		k, err := scalarKey(name)
		if err != nil {
			return err
		}
		body := bodies[i]
		if string(body) == "{}\n" {
			buf.WriteString("  " + k + ": {}\n")
			continue
		}
		buf.WriteString("  " + k + ":\n")
		for len(body) > 0 {
			line := body
			if j := bytes.IndexByte(body, '\n'); j >= 0 {
				line = body[:j+1]
			}
			if len(line) > 1 {
				buf.WriteString("    ")
			}
			buf.Write(line)
			body = body[len(line):]
		}
	}
	return nil
}

func marshalIndent(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	err := enc.Close()
	return b.Bytes(), err
}

var plainKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)

// scalarKey writes a mapping key as YAML would: plain where that is safe.
func scalarKey(s string) (string, error) {
	if plainKey.MatchString(s) {
		switch s {
		case "y", "Y", "n", "N", "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE",
			"false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL":
		default:
			return s, nil
		}
	}
	out, err := yaml.Marshal(s)
	return string(bytes.TrimSuffix(out, []byte("\n"))), err
}

// ParseRecords reads records keyed by name (what `node export` writes and
// `node import` and `node edit` read), with legacy keys moved into place
// and unknown keys warned about and dropped.
func ParseRecords(data []byte, noun string) (map[string]*Conf, error) {
	var got map[string]*Conf
	if err := yaml.Unmarshal(data, &got); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var notes Notes
	for _, name := range sortedKeys(got) {
		if got[name] == nil {
			got[name] = &Conf{}
		}
		got[name].upgradeLegacy(noun+" "+name, &notes)
	}
	for _, n := range notes {
		warnOnce("%s", n)
	}
	return got, nil
}
