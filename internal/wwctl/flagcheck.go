package wwctl

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/spf13/pflag"
)

// refuseControl makes every flag of fs refuse a value holding a control
// character before parsing it: list and key=value flags read their value
// as CSV, which keeps its first line only and would drop the rest
// silently (`--kernelargs $'quiet\nchain http://...'`).
func refuseControl(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		v := noControl{f.Value}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			f.Value = noControlSlice{v, sv}
			return
		}
		f.Value = v
	})
}

type noControl struct{ pflag.Value }

func (v noControl) Set(s string) error {
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("the value holds a control character (a newline?)")
	}
	return v.Value.Set(s)
}

type noControlSlice struct {
	noControl
	pflag.SliceValue
}
