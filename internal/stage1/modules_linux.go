package stage1

import (
	"bufio"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// modIndex is what depmod wrote for one kernel: which module serves a
// device alias, and what each module needs loaded first.
type modIndex struct {
	dir     string
	aliases [][2]string         // pattern, module name
	deps    map[string][]string // module path -> dependency paths
	byName  map[string]string   // module name -> path
	loaded  map[string]bool
}

func readModIndex(dir string) (*modIndex, error) {
	m := &modIndex{dir: dir, deps: map[string][]string{}, byName: map[string]string{}, loaded: map[string]bool{}}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mod, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		m.deps[mod] = strings.Fields(deps)
		m.byName[modName(mod)] = mod
	}
	if a, err := os.Open(filepath.Join(dir, "modules.alias")); err == nil {
		defer a.Close()
		sc := bufio.NewScanner(a)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 3 && f[0] == "alias" {
				m.aliases = append(m.aliases, [2]string{f[1], f[2]})
			}
		}
	}
	return m, nil
}

// modName is a module's name from its path: kernel/x/virtio_net.ko.xz ->
// virtio_net (dashes and underscores are the same to the kernel).
func modName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// loadForDevices loads the drivers of the devices present, round after
// round, because a bus driver (virtio_pci) brings new devices (the virtio
// NIC). It returns the modules it loaded.
func (m *modIndex) loadForDevices() []string {
	var loaded []string
	seen := map[string]bool{}
	for round := 0; round < 5; round++ {
		files, _ := filepath.Glob("/sys/bus/*/devices/*/modalias")
		fresh := false
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			alias := strings.TrimSpace(string(b))
			if alias == "" || seen[alias] {
				continue
			}
			seen[alias], fresh = true, true
			for _, a := range m.aliases {
				if ok, _ := path.Match(a[0], alias); ok {
					if p, ok := m.byName[strings.ReplaceAll(a[1], "-", "_")]; ok && m.load(p) {
						loaded = append(loaded, modName(p))
					}
				}
			}
		}
		if !fresh {
			break
		}
	}
	return loaded
}

// load inserts a module after its dependencies; it reports whether the
// module was inserted now.
func (m *modIndex) load(p string) bool {
	if m.loaded[p] {
		return false
	}
	m.loaded[p] = true
	deps := m.deps[p]
	for i := len(deps) - 1; i >= 0; i-- { // modules.dep lists the deepest last
		m.load(deps[i])
	}
	f, err := os.Open(filepath.Join(m.dir, p))
	if err != nil {
		return false
	}
	defer f.Close()
	flags := 0
	if !strings.HasSuffix(p, ".ko") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE // .ko.xz, .ko.zst: the kernel decompresses
	}
	err = unix.FinitModule(int(f.Fd()), "", flags)
	return err == nil
}

// loadAlias loads the modules serving alias (fs-ext4, crypto-crc32c): what
// modprobe does when the kernel asks for one, which it cannot here (stage
// 1 has no modprobe).
func (m *modIndex) loadAlias(alias string) {
	for _, a := range m.aliases {
		if ok, _ := path.Match(a[0], alias); ok {
			if p, ok := m.byName[strings.ReplaceAll(a[1], "-", "_")]; ok {
				m.load(p)
			}
		}
	}
}
