package image

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// imageLock is an image's lock, the file <store>/.<name>.lock. Builds,
// exec, syncuser and copies (of their source) share it: they read the
// rootfs or change it in place, and may run side by side. Import, delete
// and rename replace or move the whole image and hold it alone. Nobody
// waits: an image that is busy is refused at once with the process that
// holds it, and nothing is changed.
type imageLock struct {
	f    *os.File
	path string
}

// lockImage takes image name's lock, shared or exclusive, or fails at once
// when another process (or another operation of this one) holds it in a
// conflicting way.
func lockImage(cfg *config.Config, name string, exclusive bool) (*imageLock, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	store := cfg.ImageStoreDir()
	if err := os.MkdirAll(store, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(store, "."+name+".lock")
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		if err := flockFile(f, how|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, busyError(name, path)
			}
			return nil, fmt.Errorf("locking image %q: %w", name, err)
		}
		// The last holder removes the file on its way out; a lock taken on
		// a removed file guards nothing, so take it again on the new one.
		var held, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(path, &now) == nil &&
			held.Dev == now.Dev && held.Ino == now.Ino {
			return &imageLock{f: f, path: path}, nil
		}
		f.Close()
	}
}

// lockExisting takes image name's lock, then checks that the image exists
// (it may have gone while the lock was held by a delete).
func lockExisting(cfg *config.Config, name string, exclusive bool) (*imageLock, error) {
	l, err := lockImage(cfg, name, exclusive)
	if err != nil {
		return nil, err
	}
	if err := mustExist(cfg, name); err != nil {
		l.unlock()
		return nil, err
	}
	return l, nil
}

// unlock releases the lock; the last holder removes the lock file, so the
// store keeps none of an image nobody is using.
func (l *imageLock) unlock() {
	if flockFile(l.f, unix.LOCK_EX|unix.LOCK_NB) == nil {
		os.Remove(l.path)
	}
	l.f.Close()
}

func flockFile(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// busyError names the processes that hold an image's lock, as the kernel
// lists them in /proc/locks, with their command lines.
func busyError(name, path string) error {
	var who []string
	for _, pid := range lockHolders(path) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		line := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		if len(line) > 80 {
			line = line[:77] + "..."
		}
		if line == "" {
			who = append(who, fmt.Sprintf("pid %d", pid))
		} else {
			who = append(who, fmt.Sprintf("pid %d (%s)", pid, line))
		}
	}
	if len(who) == 0 {
		return fmt.Errorf("image %q is busy (being built, imported or changed); try again when that is done", name)
	}
	return fmt.Errorf("image %q is busy: in use by %s; try again when that is done", name, strings.Join(who, ", "))
}

// lockHolders returns the PIDs that hold a flock on the file at path.
func lockHolders(path string) []int {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return nil
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil
	}
	defer f.Close()
	// "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF": the device is
	// major:minor in hex, the inode in decimal.
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	var pids []int
	seen := map[int]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 6 || fl[1] != "FLOCK" || fl[5] != want {
			continue
		}
		if pid, err := strconv.Atoi(fl[4]); err == nil && pid > 0 && !seen[pid] {
			seen[pid] = true
			pids = append(pids, pid)
		}
	}
	return pids
}
