package node

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// List is an ordered list of names (profiles, overlays). It loads from a
// YAML sequence or, as older nodes.conf files have it, a comma-separated
// string. An entry "~NAME" in a later layer drops NAME inherited from an
// earlier one.
type List []string

// UnmarshalYAML accepts a sequence or a comma-separated scalar.
func (l *List) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind == yaml.ScalarNode {
		*l = nil
		for _, s := range strings.Split(v.Value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				*l = append(*l, s)
			}
		}
		return nil
	}
	var s []string
	if err := v.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

// Args is a kernel command line kept as a list of pieces. A scalar loads as
// one piece, whole (console=ttyS0,115200 has a comma that is no separator).
type Args []string

// UnmarshalYAML accepts a sequence or a scalar.
func (a *Args) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind == yaml.ScalarNode {
		*a = nil
		if s := strings.TrimSpace(v.Value); s != "" {
			*a = Args{s}
		}
		return nil
	}
	var s []string
	if err := v.Decode(&s); err != nil {
		return err
	}
	*a = s
	return nil
}

func joinSpace(s []string) string { return strings.Join(s, " ") }
