package warewulfd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// Main runs warewulfd with warewulf.conf at cfgFile until ctx is done. With
// pidfile set it writes its PID there while it runs (for `wwctl server`
// where there is no systemd).
func Main(ctx context.Context, cfgFile, pidfile string) error {
	s, err := New(Options{ConfigFile: cfgFile})
	if err != nil {
		return err
	}
	if err := s.Listen(); err != nil {
		return err
	}
	if pidfile != "" {
		if pid, err := ReadPidfile(pidfile); err == nil && pid != os.Getpid() && ProcessAlive(pid) {
			return fmt.Errorf("warewulfd already runs as PID %d (%s)", pid, pidfile)
		}
		if err := os.MkdirAll(filepath.Dir(pidfile), 0o755); err != nil {
			return err
		}
		if err := safefile.WriteFile(pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return err
		}
		defer os.Remove(pidfile)
	}
	return s.Run(ctx)
}

// ReadPidfile returns the PID a pidfile holds.
func ReadPidfile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: %q is not a PID", path, strings.TrimSpace(string(data)))
	}
	return pid, nil
}

// ProcessAlive reports whether a process with pid exists.
func ProcessAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, fs.ErrPermission)
}
