package wwctl_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// The CLI corpus: upstream Warewulf's own tests of the node database and
// upgrade commands, one folder per case (../shared/compat/warewulf-cli,
// README.md there). Each case runs the real wwctl in a fresh sandbox and
// compares its exit status and what it printed or wrote.

type cliCase struct {
	Args     []string `json:"args"`
	Stdin    *string  `json:"stdin"`
	Exit     string   `json:"exit"`
	Files    []string `json:"files"`
	EnvFiles []string `json:"env_files"`
	Compare  struct {
		How       string     `json:"how"`
		What      string     `json:"what"`
		Path      string     `json:"path"`
		Expected  string     `json:"expected"`
		Normalize string     `json:"normalize"`
		View      string     `json:"view"`
		Fields    []cliField `json:"fields"`
	} `json:"compare"`
}

type cliField struct {
	Node      string   `json:"node"`
	Field     string   `json:"field"`
	YAMLPath  []string `json:"yaml_path"`
	Value     *string  `json:"value"`
	ValueJSON *string  `json:"value_json"`
	Elements  []string `json:"elements"`
	OneOf     []string `json:"one_of"`
	Not       *string  `json:"not"`
	Source    *string  `json:"source"`
	IsJSON    bool     `json:"value_is_json"`
	raw       map[string]json.RawMessage
}

// usageError is a command line wwctl does not know: never the failure an
// upstream case means.
var usageError = regexp.MustCompile(`unknown (shorthand )?flag|unknown command`)

func TestCompatCLI(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	corpus := filepath.Join(repo, "..", "shared", "compat", "warewulf-cli")
	_, err := os.Stat(corpus)
	testenv.Need(t, "the upstream corpus "+corpus+" is missing", err == nil)
	cases, _ := filepath.Glob(filepath.Join(corpus, "*", "*", "case.json"))
	if len(cases) == 0 {
		t.Fatalf("no cases in %s", corpus)
	}
	ran := 0
	for _, cf := range cases {
		dir := filepath.Dir(cf)
		name, _ := filepath.Rel(corpus, dir)
		data, err := os.ReadFile(cf)
		if err != nil {
			t.Fatal(err)
		}
		var view struct {
			Compare struct {
				View string `json:"view"`
			} `json:"compare"`
		}
		if err := json.Unmarshal(data, &view); err != nil {
			t.Fatalf("%s: %v", cf, err)
		}
		if view.Compare.View == "api" {
			continue // what only upstream's Go API shows (README: a command-line runner leaves these out)
		}
		var c cliCase
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("%s: %v", cf, err)
		}
		var raw struct {
			Compare struct {
				Fields []map[string]json.RawMessage `json:"fields"`
			} `json:"compare"`
		}
		_ = json.Unmarshal(data, &raw)
		for i := range c.Compare.Fields {
			c.Compare.Fields[i].raw = raw.Compare.Fields[i]
		}
		ran++
		t.Run(name, func(t *testing.T) { runCLICase(t, dir, repo, c) })
	}
	t.Logf("%d cases run", ran)
}

func runCLICase(t *testing.T, dir, repo string, c cliCase) {
	root := t.TempDir()
	conf, err := config.WriteSandbox(root, config.SandboxOptions{Datadir: repo})
	if err != nil {
		t.Fatal(err)
	}
	if extra, err := os.ReadFile(filepath.Join(dir, "warewulf.conf")); err == nil {
		mergeConf(t, conf, extra)
	}
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "nodes.conf")); err == nil {
		writeFileT(t, cfg.NodesConf(), data)
	}
	for _, p := range c.EnvFiles {
		data, err := os.ReadFile(filepath.Join(dir, "env", p))
		if err != nil {
			t.Fatal(err)
		}
		writeFileT(t, envPath(cfg, root, p), data)
	}
	work := filepath.Join(root, "work")
	os.MkdirAll(work, 0o755)
	for _, p := range c.Files {
		data, err := os.ReadFile(filepath.Join(dir, "files", p))
		if err != nil {
			t.Fatal(err)
		}
		writeFileT(t, filepath.Join(work, p), data)
	}

	cmd := exec.Command(wwctlBin, append([]string{"--config", conf}, c.Args...)...)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "WW_CONFIG="+conf)
	if c.Stdin != nil {
		cmd.Stdin = strings.NewReader(*c.Stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	args := "wwctl " + strings.Join(c.Args, " ")
	switch {
	case c.Exit == "zero" && code != 0:
		t.Fatalf("%s: exit %d: %s", args, code, stderr.String())
	case c.Exit == "nonzero" && code == 0:
		t.Fatalf("%s: exit 0, upstream fails", args)
	case c.Exit == "nonzero" && usageError.MatchString(stderr.String()):
		t.Fatalf("%s: fails on its command line: %s", args, stderr.String())
	}
	var got string
	switch c.Compare.What {
	case "nodes.conf":
		data, _ := os.ReadFile(cfg.NodesConf())
		got = string(data)
	case "file":
		data, err := os.ReadFile(filepath.Join(work, c.Compare.Path))
		if err != nil {
			t.Fatalf("%s: wrote no %s", args, c.Compare.Path)
		}
		got = string(data)
	default:
		got = stdout.String()
	}
	want := ""
	if c.Compare.Expected != "" {
		data, err := os.ReadFile(filepath.Join(dir, c.Compare.Expected))
		if err != nil {
			t.Fatal(err)
		}
		want = string(data)
	}
	switch c.Compare.How {
	case "none":
	case "exact":
		if strings.TrimSpace(got) != strings.TrimSpace(want) {
			t.Errorf("%s:\nwant:\n%s\ngot:\n%s", args, want, got)
		}
	case "yaml-equal":
		e, g := yamlData(t, want), yamlData(t, got)
		if c.Compare.Normalize == "nodes.conf" {
			e, g = normNodesConf(e), normNodesConf(g)
		} else {
			e, g = orEmpty(e), orEmpty(g)
		}
		if !reflect.DeepEqual(e, g) {
			t.Errorf("%s:\nwant:\n%s\ngot:\n%s", args, want, got)
		}
	case "json-equal":
		var e, g any
		json.Unmarshal([]byte(want), &e)
		if err := json.Unmarshal([]byte(got), &g); err != nil || !reflect.DeepEqual(e, g) {
			t.Errorf("%s:\nwant:\n%s\ngot:\n%s", args, want, got)
		}
	case "table":
		e, g := parseTable(want), parseTable(got)
		if len(g) == 0 || !reflect.DeepEqual(e[0], g[0]) || !reflect.DeepEqual(sortedRows(e[1:]), sortedRows(g[1:])) {
			t.Errorf("%s:\nwant:\n%s\ngot:\n%s", args, want, got)
		}
	case "fields":
		if c.Compare.View == "yaml" {
			checkYAMLFields(t, args, got, c.Compare.Fields)
		} else {
			checkListAll(t, args, got, c.Compare.Fields)
		}
	default:
		t.Fatalf("unknown compare.how %q", c.Compare.How)
	}
}

func writeFileT(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// mergeConf lays the case's warewulf.conf over the sandbox's, all but
// paths: (the sandbox keeps its own directories).
func mergeConf(t *testing.T, conf string, extra []byte) {
	var base, over map[string]any
	data, _ := os.ReadFile(conf)
	yaml.Unmarshal(data, &base)
	if err := yaml.Unmarshal(extra, &over); err != nil {
		t.Fatal(err)
	}
	delete(over, "paths")
	out, _ := yaml.Marshal(deepMerge(base, over))
	writeFileT(t, conf, out)
}

func deepMerge(base, over any) any {
	b, ok1 := base.(map[string]any)
	o, ok2 := over.(map[string]any)
	if !ok1 || !ok2 {
		return over
	}
	out := map[string]any{}
	for k, v := range b {
		out[k] = v
	}
	for k, v := range o {
		if cur, ok := out[k]; ok {
			out[k] = deepMerge(cur, v)
		} else {
			out[k] = v
		}
	}
	return out
}

// envPath is where a file of upstream's test tree belongs in the sandbox.
func envPath(cfg *config.Config, root, p string) string {
	for _, m := range []struct{ prefix, dir string }{
		{"etc/warewulf/", cfg.SysconfDir()},
		{"var/lib/warewulf/chroots/", cfg.ImageStoreDir()},
		{"var/lib/warewulf/overlays/", cfg.SiteOverlayDir()},
		{"srv/warewulf/", cfg.ProvisionDir()},
	} {
		if rest, ok := strings.CutPrefix(p, m.prefix); ok {
			return filepath.Join(m.dir, rest)
		}
	}
	return filepath.Join(root, "testenv", p)
}

func yamlData(t *testing.T, s string) any {
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, s)
	}
	return v
}

func orEmpty(v any) any {
	if v == nil {
		return map[string]any{}
	}
	return v
}

func normNodesConf(v any) any {
	m, ok := v.(map[string]any)
	if !ok || m == nil {
		m = map[string]any{}
	}
	for _, k := range []string{"nodeprofiles", "nodes"} {
		if m[k] == nil {
			m[k] = map[string]any{}
		}
	}
	return m
}

var cellSep = regexp.MustCompile(`\s{2,}|\t+`)
var dashes = regexp.MustCompile(`^-+$`)

func parseTable(s string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		cells := cellSep.Split(strings.TrimSpace(line), -1)
		all := true
		for _, c := range cells {
			all = all && dashes.MatchString(c)
		}
		if !all {
			rows = append(rows, cells)
		}
	}
	return rows
}

func sortedRows(rows [][]string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = strings.Join(r, "\x00")
	}
	sort.Strings(out)
	return out
}

// asStr is a YAML value in upstream's string form (lists joined with ",").
func asStr(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case bool:
		return fmt.Sprint(x)
	case string:
		return x
	case int, float64:
		return fmt.Sprint(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = asStr(e)
		}
		return strings.Join(parts, ",")
	}
	data, _ := json.Marshal(v)
	return string(data)
}

// stringify makes scalars strings, for comparing with JSON expectations.
func stringify(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = stringify(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = stringify(e)
		}
		return out
	}
	return asStr(v)
}

func checkYAMLFields(t *testing.T, args, out string, fields []cliField) {
	var data map[string]any
	if err := yaml.Unmarshal([]byte(out), &data); err != nil {
		t.Fatalf("%s: not YAML: %v\n%s", args, err, out)
	}
	for _, f := range fields {
		n, ok := data[f.Node]
		if !ok {
			t.Errorf("%s: node %s not in the output:\n%s", args, f.Node, out)
			continue
		}
		v := n
		for _, k := range f.YAMLPath {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		where := fmt.Sprintf("%s: %s %s", args, f.Node, f.Field)
		switch {
		case f.Value != nil:
			if asStr(v) != *f.Value {
				t.Errorf("%s: want %q, got %q", where, *f.Value, asStr(v))
			}
		case f.ValueJSON != nil:
			var want any
			json.Unmarshal([]byte(*f.ValueJSON), &want)
			if !reflect.DeepEqual(stringify(v), stringify(want)) {
				t.Errorf("%s: want %s, got %v", where, *f.ValueJSON, v)
			}
		case f.Elements != nil:
			var got []string
			if l, ok := v.([]any); ok {
				for _, e := range l {
					got = append(got, asStr(e))
				}
			} else if v != nil {
				got = []string{asStr(v)}
			}
			want := append([]string(nil), f.Elements...)
			sort.Strings(got)
			sort.Strings(want)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s: want %v in any order, got %v", where, want, got)
			}
		case f.OneOf != nil:
			found := false
			for _, o := range f.OneOf {
				found = found || asStr(v) == o
			}
			if !found {
				t.Errorf("%s: want one of %v, got %q", where, f.OneOf, asStr(v))
			}
		case f.Not != nil:
			if asStr(v) == *f.Not {
				t.Errorf("%s: must not be %q", where, *f.Not)
			}
		default:
			st, ok := f.raw["subtree"]
			if !ok {
				t.Fatalf("%s: an expectation without a value", where)
			}
			var want any
			json.Unmarshal(st, &want)
			if want == nil {
				if m, ok := v.(map[string]any); v != nil && !(ok && len(m) == 0) {
					t.Errorf("%s: want nothing, got %v", where, v)
				}
			} else if !reflect.DeepEqual(stringify(v), stringify(want)) {
				t.Errorf("%s: want %v, got %v", where, want, v)
			}
		}
	}
}

func checkListAll(t *testing.T, args, out string, fields []cliField) {
	rows := parseTable(out)
	if len(rows) == 0 {
		t.Fatalf("%s: no table:\n%s", args, out)
	}
	idx := map[string]int{}
	for i, h := range rows[0] {
		idx[h] = i
	}
	for _, h := range []string{"NODE", "FIELD", "PROFILE", "VALUE"} {
		if _, ok := idx[h]; !ok {
			t.Fatalf("%s: no %s column:\n%s", args, h, out)
		}
	}
	table := map[[2]string][]string{}
	for _, r := range rows[1:] {
		if len(r) != len(rows[0]) {
			continue
		}
		k := [2]string{r[idx["NODE"]], r[idx["FIELD"]]}
		if _, dup := table[k]; !dup {
			table[k] = r
		}
	}
	for _, f := range fields {
		r, ok := table[[2]string{f.Node, f.Field}]
		where := fmt.Sprintf("%s: %s %s", args, f.Node, f.Field)
		want := ""
		if f.Value != nil {
			want = *f.Value
		}
		if want == "" {
			if ok {
				t.Errorf("%s: want no row, got %v", where, r)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: no row (want %q):\n%s", where, want, out)
			continue
		}
		got := r[idx["VALUE"]]
		same := got == want
		if f.IsJSON {
			var a, b any
			same = json.Unmarshal([]byte(got), &a) == nil && json.Unmarshal([]byte(want), &b) == nil && reflect.DeepEqual(a, b)
		}
		if !same {
			t.Errorf("%s: want VALUE %q, got %q", where, want, got)
		}
		if f.Source != nil {
			src := *f.Source
			if src == "" {
				src = "--"
			}
			if r[idx["PROFILE"]] != src {
				t.Errorf("%s: want PROFILE %q, got %q", where, src, r[idx["PROFILE"]])
			}
		}
	}
}
