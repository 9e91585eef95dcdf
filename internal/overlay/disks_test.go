package overlay

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

// diskDB is one node with a disk: scratch (ext4, 64 MiB), swap (16 MiB),
// and data (the rest), in upstream's nodes.conf keys.
func diskDB(t testing.TB, disk, mnt string, wipeTable, wipeFS bool) *node.DB {
	t.Helper()
	doc := fmt.Sprintf(`
nodeprofiles:
  default: {}
nodes:
  d1:
    image name: rocky
    disks:
      %[1]s:
        wipe_table: %[3]v
        partitions:
          scratch:
            number: "1"
            size_mib: "64"
            should_exist: true
          swap:
            number: "2"
            size_mib: "16"
            should_exist: true
          data:
            number: "3"
            should_exist: true
          never:
            number: "4"
            should_exist: false
    filesystems:
      %[1]sp1:
        format: ext4
        path: %[2]s/scratch
        wipe_filesystem: %[4]v
      /dev/disk/by-partlabel/data:
        format: ext4
        path: %[2]s/data
        mount_options: noatime
      %[1]sp2:
        format: swap
        path: swap
`, disk, mnt, wipeTable, wipeFS)
	db, err := node.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// renderAll renders every template of overlay name for node d1.
func renderAll(t testing.TB, sb *sandbox, db *node.DB, name string) map[string]Rendered {
	return renderAllFor(t, sb, db, name, "d1")
}

// renderAllFor renders every template of overlay name for nodeName.
func renderAllFor(t testing.TB, sb *sandbox, db *node.DB, name, nodeName string) map[string]Rendered {
	t.Helper()
	b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
	ov, err := Find(sb.cfg, name)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := Scan(ov)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Rendered{}
	for _, e := range entries {
		if !e.Template {
			continue
		}
		outs, err := b.Render(db, name, e.Path, nodeName)
		if err != nil {
			t.Fatalf("%s %s: %v", name, e.Path, err)
		}
		for _, o := range outs {
			got[o.Path] = o
		}
	}
	return got
}

func TestDiskOverlaysRender(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	db := diskDB(t, "/dev/vda", "", false, false)
	want := map[string]map[string][]string{
		"sfdisk": {"warewulf/wwinit.d/10-sfdisk.sh": {`dev='/dev/vda'`, `matches "$dev" 'scratch:64' 'swap:16' 'data:'`,
			"label: gpt\nsize=64MiB, name=scratch\nsize=16MiB, name=swap\nname=data\nWWEOF", `&& true; then`}},
		"mkfs":   {"warewulf/wwinit.d/20-mkfs.sh": {`dev=$(device '/dev/vdap1')`, `mkfs.ext4 "$dev"`, `dev=$(device '/dev/disk/by-partlabel/data')`}},
		"mkswap": {"warewulf/wwinit.d/20-mkswap.sh": {`dev=$(device '/dev/vdap2')`, `mkswap "$dev"`}},
		"systemd.mount": {
			"etc/systemd/system/scratch.mount":                       {"What=/dev/vdap1\nWhere=/scratch\nType=ext4", "RequiredBy=local-fs.target"},
			"etc/systemd/system/data.mount":                          {"What=/dev/disk/by-partlabel/data\nWhere=/data\nType=ext4\nOptions=noatime"},
			"etc/systemd/system/local-fs.target.wants/scratch.mount": nil,
			"etc/systemd/system/local-fs.target.wants/data.mount":    nil,
			"warewulf/init.d/30-mount":                               {`mount -t ext4 -o 'noatime' "$(device '/dev/disk/by-partlabel/data')" '/data'`},
		},
		"systemd.swap": {
			`etc/systemd/system/dev-vdap2.swap`:                   {"What=/dev/vdap2", "RequiredBy=swap.target"},
			`etc/systemd/system/swap.target.wants/dev-vdap2.swap`: nil,
			"warewulf/init.d/30-swapon":                           {`swapon "$(device '/dev/vdap2')"`},
		},
		"ignition": {
			"warewulf/ignition.json":                                 {`"device":"/dev/vda"`, `"label":"scratch","number":1`, `"sizeMiB":64`, `"format":"swap"`},
			"etc/systemd/system/scratch.mount":                       {"Requires=ww-ignition.service"},
			"etc/systemd/system/data.mount":                          {"What=/dev/disk/by-partlabel/data"},
			"etc/systemd/system/local-fs.target.wants/scratch.mount": nil,
			"etc/systemd/system/local-fs.target.wants/data.mount":    nil,
			"etc/systemd/system/dev-vdap2.swap":                      {"What=/dev/vdap2"},
			"etc/systemd/system/swap.target.wants/dev-vdap2.swap":    nil,
		},
	}
	for name, files := range want {
		t.Run(name, func(t *testing.T) {
			got := renderAll(t, sb, db, name)
			for file, subs := range files {
				o, ok := got[file]
				if !ok {
					t.Fatalf("%s not rendered; got %v", file, keys(got))
				}
				if subs == nil && o.Link != "../"+filepath.Base(file) {
					t.Errorf("%s: link %q, want ../%s", file, o.Link, filepath.Base(file))
				}
				for _, s := range subs {
					if !strings.Contains(string(o.Data), s) {
						t.Errorf("%s lacks %q:\n%s", file, s, o.Data)
					}
				}
			}
			if len(got) != len(files) {
				t.Errorf("rendered %v, want %d files", keys(got), len(files))
			}
		})
	}
	// Without disks the unit templates write nothing and ignition no config.
	plain := sampleDB(t)
	for _, name := range []string{"systemd.mount", "systemd.swap", "ignition"} {
		b := NewBuilder(sb.cfg, Options{HostRoot: sb.hostRoot})
		ov, _ := Find(sb.cfg, name)
		entries, _ := Scan(ov)
		for _, e := range entries {
			if !e.Template {
				continue
			}
			outs, err := b.Render(plain, name, e.Path, "n1")
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range outs {
				if !strings.HasPrefix(o.Path, "warewulf/init.d/") && !strings.HasPrefix(o.Path, "warewulf/wwinit.d/") {
					t.Errorf("%s: a node without disks gets %s", name, o.Path)
				}
			}
		}
	}
}

// TestMkfsKeepsWhatIsThere runs the mkfs and mkswap scripts twice on whole
// loop devices (no partitions needed): the first run makes ext4 and swap,
// the second keeps both (the same UUIDs), and wipe_filesystem makes the
// file system anew.
func TestMkfsKeepsWhatIsThere(t *testing.T) {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, c := range []string{"losetup", "wipefs", "blkid", "mkfs.ext4", "mkswap"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	testenv.Need(t, "mkfs test needs "+strings.Join(missing, ", ")+" (test/deps.sh)", len(missing) == 0)
	dir := t.TempDir()
	var loops []string
	for i := range 2 {
		img := filepath.Join(dir, fmt.Sprintf("d%d.img", i))
		os.WriteFile(img, nil, 0o600)
		os.Truncate(img, 64<<20)
		out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
		if err != nil {
			testenv.Need(t, fmt.Sprintf("no loop device: %v %s", err, out), false)
		}
		loop := strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
		loops = append(loops, loop)
	}
	sb := newSandbox(t, filepath.Join(dir, "sb"))
	run := func(wipe bool) string {
		t.Helper()
		db, err := node.Parse([]byte(fmt.Sprintf("nodes:\n  d1:\n    filesystems:\n      %s:\n        format: ext4\n        path: /scratch\n        wipe_filesystem: %v\n      %s:\n        format: swap\n        path: swap\n", loops[0], wipe, loops[1])))
		if err != nil {
			t.Fatal(err)
		}
		var log strings.Builder
		for _, s := range []struct{ overlay, file string }{{"mkfs", "warewulf/wwinit.d/20-mkfs.sh"}, {"mkswap", "warewulf/wwinit.d/20-mkswap.sh"}} {
			o := renderAll(t, sb, db, s.overlay)[s.file]
			script := filepath.Join(dir, filepath.Base(s.file))
			os.WriteFile(script, o.Data, 0o755)
			b, err := exec.Command("sh", script).CombinedOutput()
			log.Write(b)
			if err != nil {
				t.Fatalf("%s: %v\n%s", s.file, err, b)
			}
		}
		return log.String()
	}
	uuid := func(dev string) string {
		out, _ := exec.Command("blkid", "-p", "-s", "UUID", "-o", "value", dev).Output()
		return strings.TrimSpace(string(out))
	}
	log := run(false)
	if !strings.Contains(log, loops[0]+": making ext4") || !strings.Contains(log, loops[1]+": making swap") {
		t.Fatalf("first run:\n%s", log)
	}
	fsID, swapID := uuid(loops[0]), uuid(loops[1])
	log = run(false)
	if !strings.Contains(log, loops[0]+": already ext4; kept") || !strings.Contains(log, loops[1]+": already swap; kept") || strings.Contains(log, "making") {
		t.Errorf("second run remade something:\n%s", log)
	}
	if uuid(loops[0]) != fsID || uuid(loops[1]) != swapID || fsID == "" {
		t.Errorf("UUIDs changed: %s %s -> %s %s", fsID, swapID, uuid(loops[0]), uuid(loops[1]))
	}
	log = run(true)
	if !strings.Contains(log, loops[0]+": making ext4") || uuid(loops[0]) == fsID || uuid(loops[1]) != swapID {
		t.Errorf("wipe_filesystem: not made anew (or swap touched):\n%s", log)
	}
	// Something else on the device, no wipe: left alone.
	exec.Command("wipefs", "-a", loops[0]).Run()
	exec.Command("mkswap", loops[0]).Run()
	if log = run(false); !strings.Contains(log, "holds swap, not ext4, and wipe_filesystem is false: left alone") {
		t.Errorf("another format: %s", log)
	}
}

// TestRootOnDiskRender: with root naming one of the node's file systems
// (provision to disk), wwinit learns its format, and the mount overlay
// leaves that one to wwinit: no 30-mount line, no mount unit.
func TestRootOnDiskRender(t *testing.T) {
	sb := newSandbox(t, t.TempDir())
	db := diskDB(t, "/dev/vda", "", false, false)
	db.Nodes["d1"].Root = "/dev/disk/by-partlabel/data"
	conf := renderAll(t, sb, db, "wwinit")["warewulf/wwinit.conf"]
	if s := string(conf.Data); !strings.Contains(s, "WWROOT='/dev/disk/by-partlabel/data'\n") || !strings.Contains(s, "WWROOTFS='ext4'") {
		t.Errorf("wwinit.conf:\n%s", s)
	}
	got := renderAll(t, sb, db, "systemd.mount")
	if _, ok := got["etc/systemd/system/data.mount"]; ok {
		t.Errorf("a mount unit for the root on disk: %v", keys(got))
	}
	if _, ok := got["etc/systemd/system/scratch.mount"]; !ok {
		t.Errorf("no mount unit for /scratch: %v", keys(got))
	}
	if s := string(got["warewulf/init.d/30-mount"].Data); strings.Contains(s, "by-partlabel/data") || !strings.Contains(s, "'/scratch'") {
		t.Errorf("30-mount:\n%s", s)
	}
	// Without root on disk, wwinit.conf names no root file system.
	plain := renderAll(t, sb, diskDB(t, "/dev/vda", "", false, false), "wwinit")["warewulf/wwinit.conf"]
	if strings.Contains(string(plain.Data), "WWROOTFS") {
		t.Errorf("wwinit.conf of a node with its root in memory:\n%s", plain.Data)
	}
}
