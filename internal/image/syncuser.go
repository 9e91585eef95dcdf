package image

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// SyncUserOptions tune SyncUser.
type SyncUserOptions struct {
	Write bool // apply the changes; otherwise only report them
	// The controller's account files; default /etc/passwd and /etc/group.
	HostPasswd, HostGroup string
}

// idFile is a passwd or group file: lines of colon-separated fields whose
// third field is the numeric ID.
type idFile struct {
	path  string
	lines []string
	ids   map[string]uint32 // name -> ID
	names map[uint32][]string
}

func readIDFile(path string) (*idFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := &idFile{path: path, ids: map[string]uint32{}, names: map[uint32][]string{}}
	f.lines = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for _, l := range f.lines {
		fields := strings.Split(l, ":")
		if len(fields) < 3 || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "+") || strings.HasPrefix(l, "-") {
			continue
		}
		id, err := strconv.ParseUint(fields[2], 10, 32)
		if err != nil {
			continue
		}
		f.ids[fields[0]] = uint32(id)
		f.names[uint32(id)] = append(f.names[uint32(id)], fields[0])
	}
	return f, nil
}

// moves works out which IDs of the image must change to match the host:
// old -> new for every name both know under different IDs. It refuses a
// move onto an ID another image entry keeps.
func moves(kind string, image, host *idFile) (map[uint32]uint32, []string, error) {
	m := map[uint32]uint32{}
	var report []string
	names := make([]string, 0, len(image.ids))
	for n := range image.ids {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		old := image.ids[n]
		if nw, ok := host.ids[n]; ok && nw != old {
			if prev, ok := m[old]; ok && prev != nw {
				return nil, nil, fmt.Errorf("%s ID %d is shared in the image by names the controller gives different IDs", kind, old)
			}
			m[old] = nw
			report = append(report, fmt.Sprintf("%s %s: %d -> %d", kind, n, old, nw))
		}
	}
	for old, nw := range m {
		for _, other := range image.names[nw] {
			if _, moving := m[nw]; !moving {
				return nil, nil, fmt.Errorf("%s ID %d, which the controller gives to %s, belongs to %s in the image (which the controller does not move)",
					kind, nw, strings.Join(image.names[old], ","), other)
			}
		}
	}
	return m, report, nil
}

func (f *idFile) rewrite(m map[uint32]uint32, field int, other map[uint32]uint32, otherField int) []byte {
	var b strings.Builder
	remap := func(fields []string, i int, mm map[uint32]uint32) {
		if i < len(fields) {
			if id, err := strconv.ParseUint(fields[i], 10, 32); err == nil {
				if nw, ok := mm[uint32(id)]; ok {
					fields[i] = strconv.FormatUint(uint64(nw), 10)
				}
			}
		}
	}
	for _, l := range f.lines {
		fields := strings.Split(l, ":")
		if len(fields) >= 3 && !strings.HasPrefix(l, "#") {
			remap(fields, field, m)
			if other != nil {
				remap(fields, otherField, other)
			}
			l = strings.Join(fields, ":")
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// SyncUser makes the UIDs and GIDs of image name agree with the
// controller's for every user and group name both have: it rewrites the
// image's /etc/passwd and /etc/group and moves the ownership of every file
// whose owner or group changed ID (keeping setuid and setgid bits). It
// returns what changes (or changed, with Write).
func SyncUser(cfg *config.Config, name string, o SyncUserOptions) ([]string, error) {
	lock, err := lockExisting(cfg, name, false)
	if err != nil {
		return nil, err
	}
	defer lock.unlock()
	if o.HostPasswd == "" {
		o.HostPasswd = "/etc/passwd"
	}
	if o.HostGroup == "" {
		o.HostGroup = "/etc/group"
	}
	rootfs := cfg.ImageRootfs(name)
	var files [4]*idFile
	for i, p := range []string{filepath.Join(rootfs, "etc/passwd"), filepath.Join(rootfs, "etc/group"), o.HostPasswd, o.HostGroup} {
		f, err := readIDFile(p)
		if err != nil {
			return nil, err
		}
		files[i] = f
	}
	uids, report, err := moves("user", files[0], files[2])
	if err != nil {
		return nil, err
	}
	gids, greport, err := moves("group", files[1], files[3])
	if err != nil {
		return nil, err
	}
	report = append(report, greport...)
	if !o.Write || (len(uids) == 0 && len(gids) == 0) {
		return report, nil
	}
	// Files first: if this fails half way, passwd still names the old IDs
	// and a second run finishes the job.
	chowned := 0
	err = filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		nu, uok := uids[st.Uid]
		ng, gok := gids[st.Gid]
		if !uok && !gok {
			return nil
		}
		if !uok {
			nu = st.Uid
		}
		if !gok {
			ng = st.Gid
		}
		if err := os.Lchown(p, int(nu), int(ng)); err != nil {
			return err
		}
		chowned++
		// chown clears setuid and setgid: put them back.
		if fi.Mode().IsRegular() && fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			return os.Chmod(p, fi.Mode())
		}
		return nil
	})
	if err != nil {
		return report, err
	}
	for _, w := range []struct {
		f    *idFile
		data []byte
	}{{files[0], files[0].rewrite(uids, 2, gids, 3)}, {files[1], files[1].rewrite(gids, 2, nil, 0)}} {
		st, err := os.Stat(w.f.path)
		if err != nil {
			return report, err
		}
		if err := safefile.WriteFile(w.f.path, w.data, st.Mode().Perm()); err != nil {
			return report, err
		}
	}
	report = append(report, fmt.Sprintf("%d file(s) changed owner", chowned))
	return report, nil
}
