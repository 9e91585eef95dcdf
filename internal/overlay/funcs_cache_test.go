package overlay

import (
	"bufio"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/Masterminds/sprig/v3"
)

// The remembered regex functions give what sprig's give: results, errors
// and panics (a bad pattern), the second call (from the cache) too.
func TestRegexFuncsAsSprig(t *testing.T) {
	orig := sprig.TxtFuncMap()
	call := func(f any, args []any) (out string) {
		defer func() {
			if r := recover(); r != nil {
				out = fmt.Sprintf("panic: %v", r)
			}
		}()
		in := make([]reflect.Value, len(args))
		for i, a := range args {
			in[i] = reflect.ValueOf(a)
		}
		res := reflect.ValueOf(f).Call(in)
		out = fmt.Sprintf("%#v", res[0].Interface())
		if len(res) > 1 {
			out += fmt.Sprint(" ", res[1].Interface())
		}
		return out
	}
	patterns := []string{"(?m)^nameserver[ \t]+[^ \t\n]+", "a(b", "[ ,\t]+", "", "x*"}
	text := "nameserver 10.0.0.1\nsearch a, b\tc\nnameserver ::1\nabab"
	for name, f := range regexFuncs {
		for _, p := range patterns {
			var args []any
			switch reflect.TypeOf(f).NumIn() {
			case 2:
				args = []any{p, text}
			default:
				if reflect.TypeOf(f).In(2).Kind() == reflect.Int {
					args = []any{p, text, -1}
				} else {
					args = []any{p, text, "<$1>"}
				}
			}
			want := call(orig[name], args)
			for i := 0; i < 2; i++ {
				if got := call(f, args); got != want {
					t.Errorf("%s(%q) call %d: %s, sprig %s", name, p, i+1, got, want)
				}
			}
		}
	}
}

// scanLines splits as a bufio.Scanner does.
func TestScanLines(t *testing.T) {
	for _, text := range []string{"", "\n", "a", "a\n", "a\r\nb\r", "a\n\nb\n\n", "\r\n\r", strings.Repeat("x", 70000) + "\nb", "a\n" + strings.Repeat("y", 66000)} {
		var want []string
		sc := bufio.NewScanner(strings.NewReader(text))
		for sc.Scan() {
			want = append(want, sc.Text())
		}
		got := slices.Collect(scanLines(text))
		if !slices.Equal(got, want) {
			t.Errorf("%.20q: %q, bufio.Scanner %q", text, got, want)
		}
	}
}
