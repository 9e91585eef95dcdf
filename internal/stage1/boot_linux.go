package stage1

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// NewRoot is where the image is unpacked before the switch.
const NewRoot = "/newroot"

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "wwstage1: "+format+"\n", args...)
}

// Main is stage 1 as the kernel's /init. It never returns: it either
// execs the image's /init (wwinit) or reboots after a failure.
func Main() {
	err := boot()
	logf("boot failed: %v; rebooting in 30 seconds", err)
	time.Sleep(30 * time.Second)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	select {}
}

func boot() error {
	start := time.Now()
	for _, m := range []struct{ fs, dir, opts string }{
		{"proc", "/proc", ""}, {"sysfs", "/sys", ""}, {"devtmpfs", "/dev", "mode=0755"},
	} {
		os.MkdirAll(m.dir, 0o755)
		if err := unix.Mount(m.fs, m.dir, m.fs, unix.MS_NOSUID, m.opts); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	if c, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
		for _, fd := range []int{0, 1, 2} {
			unix.Dup2(int(c.Fd()), fd)
		}
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	p, err := ParseCmdline(string(cmdline))
	if err != nil {
		return err
	}
	// The asset key is the SMBIOS asset tag, sent on every request.
	p.AssetKey = readAssetTag()
	var uts unix.Utsname
	unix.Uname(&uts)
	kver := unix.ByteSliceToString(uts.Release[:])
	idx, err := readModIndex(filepath.Join("/lib/modules", kver))
	if err != nil {
		logf("no kernel modules for %s (%v): relying on built-in drivers", kver, err)
		idx = &modIndex{}
	} else if mods := idx.loadForDevices(); len(mods) > 0 {
		logf("loaded %s", strings.Join(mods, " "))
	}
	link, err := findLink(p.MAC, 30*time.Second)
	if err != nil {
		return err
	}
	if err := ifup(link.Name, p.IP, p.Netmask); err != nil {
		return err
	}
	if p.Gateway != nil {
		if err := defaultRoute(p.Gateway); err != nil {
			logf("%v (going on: the controller may be on this network)", err)
		}
	}
	logf("%s (%s) is %s netmask %s; fetching from %s", link.Name, p.MAC, p.IP, p.Netmask, p.Base)

	os.MkdirAll(NewRoot, 0o755)
	onDisk := false
	if strings.HasPrefix(p.Root, "/dev/") {
		dev, fstype, err := mountDisk(idx, p.Root, NewRoot)
		if err == nil {
			logf("root on %s (%s, %s): the image goes onto the disk", p.Root, dev, fstype)
			onDisk = true
		} else {
			// A first boot: the disk overlays make the partition and its
			// file system, and wwinit copies the root onto it.
			logf("%v; unpacking into a tmpfs, wwinit provisions the disk", err)
		}
	}
	if !onDisk {
		if err := unix.Mount("tmpfs", NewRoot, "tmpfs", 0, "mode=0755,size="+p.TmpfsSize); err != nil {
			return fmt.Errorf("mount the root tmpfs: %w", err)
		}
	}
	ctx := context.Background()
	client := &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
		ResponseHeaderTimeout: 60 * time.Second,
		DisableCompression:    true,
	}}
	t := time.Now()
	st, err := fetchInto(ctx, client, p.URL("image", p.Compress), NewRoot)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	took := time.Since(t)
	logf("image: %d bytes, %d files in %v (%.0f MB/s), %d resumes, %d waits for the server, digest %s",
		st.Bytes, st.Entries, took.Round(time.Millisecond), float64(st.Bytes)/took.Seconds()/1e6,
		st.Resumes, st.Waits, map[bool]string{true: "verified", false: "not sent by the server"}[st.Verified])
	if !st.Verified {
		logf("warning: the server sent no digest for the image; it is unchecked")
	}
	n, err := moveTree("/", NewRoot)
	if err != nil {
		return fmt.Errorf("kernel modules: %w", err)
	}
	logf("kmods: %d files moved into the root", n)
	stages := []string{"system"}
	if p.Runtime {
		stages = append(stages, "runtime")
	}
	for _, s := range stages {
		if _, err := fetchInto(ctx, client, p.URL(s, "gz"), NewRoot); err != nil {
			return fmt.Errorf("%s overlay: %w", s, err)
		}
	}
	client.CloseIdleConnections()
	if err := ifdown(link.Name); err != nil {
		logf("%s: removing the address: %v", link.Name, err)
	}
	logf("root ready in %v; switching to it", time.Since(start).Round(time.Millisecond))
	return switchRoot(NewRoot, "/init")
}

// ownFiles are stage 1's own entries in the initramfs root: everything
// else there was unpacked by the kernel from the kmods initrd.
var ownFiles = map[string]bool{"init": true, "proc": true, "sys": true, "dev": true, "run": true,
	strings.TrimPrefix(NewRoot, "/"): true}

// moveTree moves the kmods the kernel unpacked next to stage 1 into the
// new root, file by file (copy, then unlink), so memory never holds two
// copies of more than one file.
func moveTree(from, to string) (int, error) {
	n := 0
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if rel == "." {
			return nil
		}
		if top, _, _ := strings.Cut(rel, "/"); ownFiles[top] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(to, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*unix.Stat_t)
		switch {
		case d.IsDir():
			if err := os.MkdirAll(dst, fi.Mode().Perm()); err != nil {
				return err
			}
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			os.Remove(dst)
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
			os.Remove(path)
		case d.Type().IsRegular():
			if err := copyFile(path, dst, fi.Mode().Perm()); err != nil {
				return err
			}
			os.Remove(path)
			n++
		default:
			return nil
		}
		if st != nil {
			os.Lchown(dst, int(st.Uid), int(st.Gid))
		}
		return nil
	})
	return n, err
}

func copyFile(src, dst string, perm fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	os.Remove(dst)
	return os.WriteFile(dst, data, perm)
}

// switchRoot makes dir the root and execs init there, as busybox's
// switch_root does: the kernel file systems move along, the old root's
// files are deleted (they are memory), and wwinit learns (WWINIT_STAGE=2)
// that its root is already a tmpfs.
func switchRoot(dir, init string) error {
	for _, m := range []string{"/proc", "/sys", "/dev"} {
		os.MkdirAll(dir+m, 0o755)
		if err := unix.Mount(m, dir+m, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s: %w", m, err)
		}
	}
	if err := os.Chdir(dir); err != nil {
		return err
	}
	if entries, err := os.ReadDir("/"); err == nil {
		for _, e := range entries {
			if "/"+e.Name() != dir {
				os.RemoveAll("/" + e.Name())
			}
		}
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move the new root to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	env := append(os.Environ(), "WWINIT_STAGE=2")
	if _, err := os.Stat(init); err != nil {
		return fmt.Errorf("the new root has no %s (is the wwinit overlay in the system overlay?)", init)
	}
	return unix.Exec(init, []string{init}, env)
}

// diskTypes are the file systems a root on disk is tried as, in order.
var diskTypes = []string{"ext4", "xfs", "btrfs", "ext3", "ext2"}

// mountDisk mounts the node's root device (a /dev path, or
// /dev/disk/by-partlabel/NAME, found in sysfs: stage 1 has no udev) on
// dir, waiting up to 30 s for its driver, and loading the file system's
// module first.
func mountDisk(idx *modIndex, root, dir string) (dev, fstype string, err error) {
	deadline := time.Now().Add(30 * time.Second)
	var disksSince time.Time
	for {
		dev = resolveDevice(root)
		if fi, err := os.Stat(dev); err == nil && fi.Mode()&os.ModeDevice != 0 {
			break
		}
		if time.Now().After(deadline) {
			return "", "", fmt.Errorf("root %s: no such block device after 30 s", root)
		}
		// The kernel reads a disk's partition table as it adds the disk:
		// a disk present for 2 s without the partition does not have it.
		if disksSince.IsZero() && haveDisk() {
			disksSince = time.Now()
		} else if !disksSince.IsZero() && time.Since(disksSince) > 2*time.Second {
			return "", "", fmt.Errorf("root %s: no such partition on the disks present", root)
		}
		idx.loadForDevices() // a storage controller may bring the disk
		time.Sleep(200 * time.Millisecond)
	}
	var errs []string
	for _, t := range diskTypes {
		idx.loadAlias("fs-" + t)
		if t == "ext4" || t == "btrfs" || t == "xfs" {
			idx.loadAlias("crypto-crc32c") // their checksums; the kernel cannot modprobe it here
		}
		err := unix.Mount(dev, dir, t, 0, "")
		if err == nil {
			return dev, t, nil
		}
		errs = append(errs, t+": "+err.Error())
	}
	return dev, "", fmt.Errorf("root %s (%s): cannot mount it (%s): no file system yet?", root, dev, strings.Join(errs, "; "))
}

// haveDisk reports whether a disk (not a loop or RAM device) is present.
func haveDisk() bool {
	ents, _ := os.ReadDir("/sys/block")
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, "loop") && !strings.HasPrefix(n, "ram") && !strings.HasPrefix(n, "zram") {
			return true
		}
	}
	return false
}

// resolveDevice maps /dev/disk/by-partlabel/NAME to the partition's /dev
// node by its PARTNAME in sysfs; other paths are returned as they are.
func resolveDevice(p string) string {
	name, ok := strings.CutPrefix(p, "/dev/disk/by-partlabel/")
	if !ok {
		return p
	}
	files, _ := filepath.Glob("/sys/class/block/*/uevent")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var devname, partname string
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "DEVNAME="); ok {
				devname = v
			}
			if v, ok := strings.CutPrefix(l, "PARTNAME="); ok {
				partname = v
			}
		}
		if partname == name && devname != "" {
			return "/dev/" + devname
		}
	}
	return p
}

// fetchInto fetches and unpacks url with dir as the root directory of the
// process, so that the image's absolute symlinks (var/run -> /run) lead
// into the new root, as they will after the switch, not into stage 1's.
func fetchInto(ctx context.Context, client *http.Client, url, dir string) (Stats, error) {
	old, err := os.Open("/")
	if err != nil {
		return Stats{}, err
	}
	defer old.Close()
	if err := unix.Chroot(dir); err != nil {
		return Stats{}, fmt.Errorf("chroot %s: %w", dir, err)
	}
	os.Chdir("/")
	st, ferr := Fetch(ctx, client, url, "/", logf)
	// Back to stage 1's root: the directory opened before is outside
	// the chroot, and chroot(".") from it leaves it.
	if err := unix.Fchdir(int(old.Fd())); err != nil {
		return st, fmt.Errorf("leaving the new root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return st, fmt.Errorf("leaving the new root: %w", err)
	}
	return st, ferr
}
