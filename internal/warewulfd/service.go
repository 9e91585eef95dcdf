package warewulfd

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// UnitName is the systemd unit etc/warewulfd.service installs.
const UnitName = "warewulfd.service"

// ErrNotRunning is returned by Service.Status when no warewulfd runs.
var ErrNotRunning = errors.New("warewulfd is not running")

// Service starts, stops and signals warewulfd: through systemd where
// systemd is the running init, else as a background process tracked by
// cfg.PidFile() (containers, the demo, a sandbox).
type Service struct {
	Cfg *config.Config
	// Binary is the warewulfd to start without systemd; default: beside
	// the running executable, else on $PATH.
	Binary string
	// Systemd forces (true) or forbids (false) systemd; nil detects it.
	Systemd *bool
}

// UsesSystemd reports whether the service goes through systemctl.
func (s *Service) UsesSystemd() bool {
	if s.Systemd != nil {
		return *s.Systemd
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return false
	}
	out, _ := exec.Command("systemctl", "is-system-running").Output()
	switch strings.TrimSpace(string(out)) {
	case "running", "degraded", "starting", "initializing", "maintenance":
		return true
	}
	return false
}

func systemctl(verb string) error {
	out, err := exec.Command("systemctl", verb, UnitName).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s %s: %v: %s", verb, UnitName, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// pid returns the PID of the running warewulfd, or ErrNotRunning.
func (s *Service) pid() (int, error) {
	pid, err := ReadPidfile(s.Cfg.PidFile())
	if errors.Is(err, os.ErrNotExist) {
		return 0, ErrNotRunning
	}
	if err != nil {
		return 0, err
	}
	if !ProcessAlive(pid) {
		return 0, ErrNotRunning
	}
	return pid, nil
}

func (s *Service) binary() (string, error) {
	if s.Binary != "" {
		return s.Binary, nil
	}
	if self, err := os.Executable(); err == nil {
		b := filepath.Join(filepath.Dir(self), "warewulfd")
		if _, err := os.Stat(b); err == nil {
			return b, nil
		}
	}
	b, err := exec.LookPath("warewulfd")
	if err != nil {
		return "", errors.New("warewulfd binary not found beside wwctl or on $PATH")
	}
	return b, nil
}

// Start starts warewulfd and returns once it listens (its pidfile is
// written after its sockets are open).
func (s *Service) Start() error {
	if s.UsesSystemd() {
		return systemctl("start")
	}
	if pid, err := s.pid(); err == nil {
		return fmt.Errorf("warewulfd already runs as PID %d", pid)
	}
	bin, err := s.binary()
	if err != nil {
		return err
	}
	logFile := s.Cfg.DaemonLog()
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		return err
	}
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	defer log.Close()
	start, _ := log.Seek(0, 2)
	os.Remove(s.Cfg.PidFile())
	cmd := exec.Command(bin, "--config", s.Cfg.File(), "--pidfile", s.Cfg.PidFile())
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive wwctl
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("warewulfd exited (%v): %s", err, lastLines(logFile, start))
		case <-deadline:
			cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("warewulfd did not start within 15 s; see %s", logFile)
		case <-time.After(50 * time.Millisecond):
			if pid, err := ReadPidfile(s.Cfg.PidFile()); err == nil && pid == cmd.Process.Pid {
				return nil
			}
		}
	}
}

// lastLines returns what a log file gained after offset, at most 2 KB.
func lastLines(path string, offset int64) string {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) < offset {
		return "see " + path
	}
	data = bytes.TrimSpace(data[offset:])
	if len(data) > 2048 {
		data = data[len(data)-2048:]
	}
	return string(data)
}

// Stop asks warewulfd to finish its transfers and exit, and waits for it.
func (s *Service) Stop() error {
	if s.UsesSystemd() {
		return systemctl("stop")
	}
	pid, err := s.pid()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping PID %d: %w", pid, err)
	}
	for i := 0; i < 400; i++ { // warewulfd gives transfers up to 30 s
		if !ProcessAlive(pid) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("warewulfd (PID %d) did not stop within 40 s", pid)
}

// Restart stops warewulfd if it runs, then starts it.
func (s *Service) Restart() error {
	if s.UsesSystemd() {
		return systemctl("restart")
	}
	if err := s.Stop(); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	return s.Start()
}

// Reload makes warewulfd reread warewulf.conf and nodes.conf (SIGHUP).
func (s *Service) Reload() error {
	if s.UsesSystemd() {
		return systemctl("reload")
	}
	pid, err := s.pid()
	if err != nil {
		return err
	}
	return syscall.Kill(pid, syscall.SIGHUP)
}

// Status describes the running warewulfd, or returns ErrNotRunning.
func (s *Service) Status() (string, error) {
	if s.UsesSystemd() {
		out, err := exec.Command("systemctl", "status", "--no-pager", UnitName).CombinedOutput()
		if err != nil {
			return string(out), ErrNotRunning
		}
		return string(out), nil
	}
	pid, err := s.pid()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("warewulfd is running as PID %d (pidfile %s, log %s)", pid, s.Cfg.PidFile(), s.Cfg.DaemonLog()), nil
}
