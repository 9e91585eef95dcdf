package wwctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// The overlay corpus: upstream Warewulf's own overlay tests, one folder per
// case (../shared/compat/warewulf-overlays, README.md there), rendered
// with `wwctl overlay show --render` and compared file by file.

type compatCase struct {
	Overlay     string            `json:"overlay"`
	Template    string            `json:"template"`
	Node        string            `json:"node"`
	Env         map[string]string `json:"env"`
	Quiet       bool              `json:"quiet"`
	Aborted     bool              `json:"aborted"`
	Placeholder map[string]string `json:"placeholders"`
	Compare     struct {
		How        string `json:"how"`
		Transforms []struct {
			Regex string  `json:"regex_replace"`
			With  string  `json:"with"`
			Skip  *string `json:"skip_until_line_containing"`
		} `json:"actual_transforms"`
	} `json:"compare"`
	Files []struct {
		Path     string  `json:"path"`
		Symlink  *string `json:"symlink"`
		Expected string  `json:"expected"`
	} `json:"files"`
	EnvFiles []struct {
		Path string `json:"path"`
	} `json:"env_files"`
}

func compatCorpus(t *testing.T, name string) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "compat", name)
	_, err := os.Stat(dir)
	testenv.Need(t, "the upstream corpus "+dir+" is missing", err == nil)
	return dir
}

func TestCompatOverlays(t *testing.T) {
	corpus := compatCorpus(t, "warewulf-overlays")
	cases, _ := filepath.Glob(filepath.Join(corpus, "*", "*", "case.json"))
	if len(cases) == 0 {
		t.Fatalf("no cases in %s", corpus)
	}
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	host, _ := os.Hostname()
	for _, cf := range cases {
		dir := filepath.Dir(cf)
		name, _ := filepath.Rel(corpus, dir)
		t.Run(name, func(t *testing.T) {
			var c compatCase
			data, err := os.ReadFile(cf)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &c); err != nil {
				t.Fatal(err)
			}
			for k, v := range c.Env {
				t.Setenv(k, v)
			}
			conf := compatSandbox(t, dir, repo, c)
			out, err := wwctlOut(t, "--config", conf, "overlay", "show", "--render", c.Node, c.Overlay, c.Template)
			if err != nil {
				t.Fatalf("overlay show: %v\n%s", err, out)
			}
			got := parseShow(out, c.Template)
			for i := range got {
				if got[i].link == "" {
					got[i].text = ensureNL(compatTransform(t, got[i].text, c))
				}
			}
			if c.Quiet {
				var all strings.Builder
				for _, g := range got {
					all.WriteString(g.text)
				}
				want := compatExpected(t, dir, c.Files[0].Expected, c, host)
				compatSame(t, c.Files[0].Path, c.Compare.How, want, all.String())
				return
			}
			byPath := map[string]shown{}
			var paths []string
			for _, g := range got {
				byPath[g.path] = g
				paths = append(paths, g.path)
			}
			var want []string
			for _, f := range c.Files {
				want = append(want, f.Path)
				g, ok := byPath[f.Path]
				if !ok {
					t.Errorf("no file /%s (it wrote %v)", f.Path, paths)
					continue
				}
				if f.Symlink != nil {
					if g.link != *f.Symlink {
						t.Errorf("/%s: want a symlink to %q, got link %q text %q", f.Path, *f.Symlink, g.link, g.text)
					}
					continue
				}
				compatSame(t, f.Path, c.Compare.How, compatExpected(t, dir, f.Expected, c, host), g.text)
			}
			sort.Strings(paths)
			sort.Strings(want)
			if !c.Aborted && !reflect.DeepEqual(paths, want) {
				t.Errorf("files written: %v, want %v", paths, want)
			}
		})
	}
}

// compatSandbox is a controller in a temporary directory with the case's
// warewulf.conf (upstream's defaults for what it does not set: an empty
// file), nodes.conf, other files and overlay (as a site overlay).
func compatSandbox(t *testing.T, dir, repo string, c compatCase) string {
	root := t.TempDir()
	conf := map[string]any{}
	if data, err := os.ReadFile(filepath.Join(dir, "warewulf.conf")); err == nil {
		if err := yaml.Unmarshal(data, &conf); err != nil {
			t.Fatal(err)
		}
		if conf == nil {
			conf = map[string]any{}
		}
	}
	conf["paths"] = map[string]any{
		"sysconfdir": "etc", "datadir": testenv.RepoDatadir(t, repo), "localstatedir": "state", "cachedir": "state/cache", "srvdir": "state", "rundir": "run",
		"wwoverlaydir": "state/overlays", "wwchrootdir": "state/chroots", "wwprovisiondir": "state/provision",
	}
	data, err := yaml.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	cf := filepath.Join(root, "warewulf.conf")
	write := func(p string, data []byte) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(cf, data)
	nodes, err := os.ReadFile(filepath.Join(dir, "nodes.conf"))
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(root, "etc", "warewulf", "nodes.conf"), nodes)
	for _, ef := range c.EnvFiles {
		data, err := os.ReadFile(filepath.Join(dir, "env", ef.Path))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, "testenv", ef.Path)
		switch {
		case strings.HasPrefix(ef.Path, "etc/"): // etc/warewulf/... included
			dst = filepath.Join(root, ef.Path)
		case strings.HasPrefix(ef.Path, "var/lib/warewulf/chroots/"):
			dst = filepath.Join(root, "state", "chroots", strings.TrimPrefix(ef.Path, "var/lib/warewulf/chroots/"))
		}
		write(dst, data)
	}
	ov := filepath.Join(root, "state", "overlays", c.Overlay, "rootfs")
	err = filepath.Walk(filepath.Join(dir, "overlay"), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(dir, "overlay"), p)
		if info.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			os.MkdirAll(filepath.Dir(filepath.Join(ov, rel)), 0o755)
			return os.Symlink(target, filepath.Join(ov, rel))
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		write(filepath.Join(ov, rel), data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

func wwctlOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := NewRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	if err != nil {
		return errb.String(), err
	}
	return out.String(), nil
}

type shown struct {
	path, text, link string
}

var showHeader = regexp.MustCompile(`==> /(.*?) \((\d+) (\d+):(\d+)\) <==\n`)

// parseShow splits `overlay show --render` output into its files, as a
// script would: a header before each file when there are several or the
// path is not the template's own; a symlink prints "symlink to TARGET".
func parseShow(out, template string) []shown {
	def := strings.TrimSuffix(template, ".ww")
	heads := showHeader.FindAllStringSubmatchIndex(out, -1)
	type part struct{ path, body string }
	var parts []part
	if len(heads) == 0 {
		if out != "" {
			parts = append(parts, part{def, out})
		}
	} else {
		if heads[0][0] > 0 {
			parts = append(parts, part{def, out[:heads[0][0]]})
		}
		for i, h := range heads {
			end := len(out)
			if i+1 < len(heads) {
				end = heads[i+1][0]
			}
			parts = append(parts, part{out[h[2]:h[3]], out[h[1]:end]})
		}
	}
	var res []shown
	link := regexp.MustCompile(`^symlink to (.*)\n$`)
	for _, p := range parts {
		if m := link.FindStringSubmatch(p.body); m != nil {
			res = append(res, shown{path: p.path, link: m[1]})
		} else {
			res = append(res, shown{path: p.path, text: p.body})
		}
	}
	return res
}

func ensureNL(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

// goRepl turns ${1} into regexp's own syntax (already Go's: unchanged).
func compatTransform(t *testing.T, text string, c compatCase) string {
	for _, tr := range c.Compare.Transforms {
		switch {
		case tr.Regex != "":
			re, err := regexp.Compile(tr.Regex)
			if err != nil {
				t.Fatal(err)
			}
			text = re.ReplaceAllString(text, tr.With)
		case tr.Skip != nil:
			lines := strings.SplitAfter(text, "\n")
			found := false
			for i, l := range lines {
				if strings.Contains(l, *tr.Skip) {
					text, found = strings.Join(lines[i:], ""), true
					break
				}
			}
			if !found {
				text = ""
			}
		}
	}
	return text
}

func compatExpected(t *testing.T, dir, rel string, c compatCase, host string) string {
	data, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for ph, what := range c.Placeholder {
		if what != "hostname" {
			t.Fatalf("unknown placeholder %s", what)
		}
		s = strings.ReplaceAll(s, ph, host)
	}
	return s
}

func compatSame(t *testing.T, path, how, want, got string) {
	t.Helper()
	if how == "json" {
		var w, g any
		if err := json.Unmarshal([]byte(want), &w); err != nil {
			t.Fatalf("/%s: expected file is not JSON: %v", path, err)
		}
		if err := json.Unmarshal([]byte(got), &g); err != nil || !reflect.DeepEqual(w, g) {
			t.Errorf("/%s: JSON differs:\nwant %s\ngot  %s", path, want, got)
		}
		return
	}
	if want != got {
		t.Errorf("/%s differs: %s\n--- want\n%s--- got\n%s", path, firstDiff(want, got), want, got)
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b || i >= len(w) || i >= len(g) {
			return fmt.Sprintf("line %d: want %q, got %q", i+1, a, b)
		}
	}
	return "same lines"
}
