package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/containers/storage/pkg/reexec"
	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// ExecOptions tune Exec.
type ExecOptions struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Env            []string // extra VAR=value for the command
	// Binds are mounts for this command only (wwctl image exec --bind),
	// after warewulf.conf's image mounts.
	Binds []config.MountConf
	// Layer, when set, is a directory laid over the image, read-only,
	// for the command (a node's overlays: wwctl image exec --node).
	Layer string
}

// chrootSpec is what the parent hands the re-executed child that enters
// the image.
type chrootSpec struct {
	Rootfs string
	// Layer and View: the child mounts Layer over Rootfs, read-only, at
	// View and enters that instead.
	Layer, View string
	Argv        []string
	Env         []string
	Mounts      []bindMount
}

type bindMount struct {
	Source, Dest string // Dest is a resolved path inside Rootfs
	ReadOnly     bool
}

const (
	chrootInit = "wwctl-image-chroot"
	chrootEnv  = "WWCTL_IMAGE_CHROOT"
)

func init() { reexec.Register(chrootInit, chrootChild) }

// Exec runs argv inside image name: chrooted into its rootfs in a private
// mount namespace where /proc, /sys and /dev are mounted, the controller's
// resolv.conf and warewulf.conf's `image mounts` are bound in, so nothing
// is left mounted when the command ends. It returns the command's exit
// status. The binary's main must call containers/storage reexec.Init.
func Exec(ctx context.Context, cfg *config.Config, name string, argv []string, o ExecOptions) (int, error) {
	if len(argv) == 0 {
		return -1, errors.New("no command given")
	}
	if os.Geteuid() != 0 {
		return -1, errors.New("running a command in an image needs root")
	}
	// The image may not be deleted, renamed or replaced under the command.
	lock, err := lockExisting(cfg, name, false)
	if err != nil {
		return -1, err
	}
	defer lock.unlock()
	rootfs := cfg.ImageRootfs(name)
	spec := chrootSpec{Rootfs: rootfs, Argv: argv, Env: o.Env}
	if o.Layer != "" {
		view, err := os.MkdirTemp("", "wwctl-view-")
		if err != nil {
			return -1, err
		}
		defer os.Remove(view)
		spec.Layer, spec.View = o.Layer, view
	}
	var created []string // files made as mount points, removed afterwards
	defer func() {
		for _, p := range created {
			os.Remove(p)
		}
	}()
	add := func(src, dest string, ro bool) error {
		st, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("image mounts: %w", err)
		}
		target, err := securejoin.SecureJoin(rootfs, dest)
		if err != nil {
			return err
		}
		if _, err := os.Lstat(target); os.IsNotExist(err) {
			if st.IsDir() {
				err = os.MkdirAll(target, 0o755)
			} else {
				os.MkdirAll(filepath.Dir(target), 0o755)
				var f *os.File
				if f, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
					f.Close()
					created = append(created, target)
				}
			}
			if err != nil {
				return err
			}
		}
		spec.Mounts = append(spec.Mounts, bindMount{Source: src, Dest: target, ReadOnly: ro})
		return nil
	}
	if _, err := os.Stat("/etc/resolv.conf"); err == nil {
		if err := add("/etc/resolv.conf", "/etc/resolv.conf", true); err != nil {
			return -1, err
		}
	}
	var restore []func()
	defer func() {
		for _, r := range restore {
			r()
		}
	}()
	for _, m := range append(append([]config.MountConf(nil), cfg.ImageMounts...), o.Binds...) {
		dest := m.Dest
		if dest == "" {
			dest = m.Source
		}
		if m.Copy {
			// copy: the file is put in the image for the command and the
			// image's own file (or none) is put back afterwards.
			r, err := copyIn(rootfs, m.Source, dest)
			if err != nil {
				return -1, err
			}
			restore = append(restore, r)
			continue
		}
		if err := add(m.Source, dest, m.ReadOnly); err != nil {
			return -1, err
		}
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return -1, err
	}
	cmd := reexec.Command(chrootInit)
	cmd.Env = append(os.Environ(), chrootEnv+"="+string(data))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS, Pdeathsig: unix.SIGKILL}
	if err := cmd.Start(); err != nil {
		return -1, err
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cmd.Process.Signal(unix.SIGTERM)
		case <-done:
		}
	}()
	err = cmd.Wait()
	close(done)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return exit.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

// chrootChild runs in the re-executed binary, already in its own mount
// namespace: it mounts, chroots and becomes the command.
func chrootChild() {
	var spec chrootSpec
	if err := json.Unmarshal([]byte(os.Getenv(chrootEnv)), &spec); err != nil {
		fail("bad chroot spec: %v", err)
	}
	os.Unsetenv(chrootEnv)
	// Keep every mount below inside this namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fail("making mounts private: %v", err)
	}
	if spec.Layer != "" {
		// A read-only view: the layer over the image; nothing the command
		// does can change either.
		opts := "lowerdir=" + spec.Layer + ":" + spec.Rootfs
		if err := unix.Mount("overlay", spec.View, "overlay", unix.MS_RDONLY, opts); err != nil {
			fail("mounting the node's view of the image: %v", err)
		}
		for i, m := range spec.Mounts {
			if rel, err := filepath.Rel(spec.Rootfs, m.Dest); err == nil {
				spec.Mounts[i].Dest = filepath.Join(spec.View, rel)
			}
		}
		spec.Rootfs = spec.View
	}
	for _, m := range []struct{ dir, fstype, src string }{{"proc", "proc", "proc"}, {"sys", "sysfs", "sysfs"}} {
		target := filepath.Join(spec.Rootfs, m.dir)
		os.MkdirAll(target, 0o555)
		if err := unix.Mount(m.src, target, m.fstype, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			fail("mounting /%s: %v", m.dir, err)
		}
	}
	dev := filepath.Join(spec.Rootfs, "dev")
	os.MkdirAll(dev, 0o755)
	if err := unix.Mount("/dev", dev, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		fail("binding /dev: %v", err)
	}
	for _, m := range spec.Mounts {
		if err := unix.Mount(m.Source, m.Dest, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			fail("binding %s: %v", m.Source, err)
		}
		if m.ReadOnly {
			if err := unix.Mount("", m.Dest, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				fail("making %s read-only: %v", m.Dest, err)
			}
		}
	}
	if err := unix.Chroot(spec.Rootfs); err != nil {
		fail("chroot %s: %v", spec.Rootfs, err)
	}
	if err := os.Chdir("/"); err != nil {
		fail("chdir /: %v", err)
	}
	env := append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "TERM=" + termOr("dumb")}, spec.Env...)
	os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	bin, err := exec.LookPath(spec.Argv[0])
	if err != nil {
		fail("%s: %v", spec.Argv[0], err)
	}
	err = unix.Exec(bin, spec.Argv, env)
	fail("exec %s: %v", bin, err)
}

func termOr(def string) string {
	if t := os.Getenv("TERM"); t != "" {
		return t
	}
	return def
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "wwctl image exec: "+format+"\n", args...)
	os.Exit(127)
}

// copyIn copies the file src into the image at dest and returns what puts
// the image's own file back.
func copyIn(rootfs, src, dest string) (func(), error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("image mounts: %w", err)
	}
	target, err := securejoin.SecureJoin(rootfs, dest)
	if err != nil {
		return nil, err
	}
	old, oldErr := os.ReadFile(target)
	st, statErr := os.Lstat(target)
	if statErr == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("image mounts: %s in the image is not a regular file", dest)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(target, data, 0o644); err != nil {
		return nil, err
	}
	return func() {
		if oldErr == nil {
			os.WriteFile(target, old, st.Mode().Perm())
		} else {
			os.Remove(target)
		}
	}, nil
}
