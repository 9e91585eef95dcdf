package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a process the test started. Stop ends it by its PID: SIGTERM,
// then SIGKILL. Pdeathsig kills it too if the test binary dies first.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	out  *output
	in   io.WriteCloser // the process's stdin (a VM's serial console)
}

// output collects a process's output line by line, tees it to a log file,
// and lets tests wait for a line.
type output struct {
	mu      sync.Mutex
	lines   []string
	stamps  []time.Time
	changed chan struct{}
	file    *os.File
	echo    io.Writer // also print here (the demo shows the console)
	partial []byte
}

func newOutput(logFile string, echo io.Writer) *output {
	o := &output{changed: make(chan struct{}), echo: echo}
	if logFile != "" {
		o.file, _ = os.Create(logFile)
	}
	return o
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		o.file.Write(p)
	}
	if o.echo != nil {
		o.echo.Write(p)
	}
	o.partial = append(o.partial, p...)
	for {
		i := bytes.IndexAny(o.partial, "\n")
		if i < 0 {
			break
		}
		line := stripANSI(strings.TrimRight(string(o.partial[:i]), "\r"))
		o.partial = o.partial[i+1:]
		// A carriage return starts the line over, as on a terminal.
		if j := strings.LastIndexByte(line, '\r'); j >= 0 {
			line = line[j+1:]
		}
		o.lines = append(o.lines, line)
		o.stamps = append(o.stamps, time.Now())
	}
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[a-zA-Z]|\x1b[()][AB0-9]|\x1bc`)

func stripANSI(s string) string { return ansi.ReplaceAllString(s, "") }

// waitFor waits until a line from index from on matches re, and returns
// its index and when it was read; ok is false on timeout or when stop
// closes (the process exited).
func (o *output) waitFor(re *regexp.Regexp, from int, timeout time.Duration, stop <-chan struct{}) (idx int, at time.Time, ok bool) {
	return o.wait(re, from, timeout, stop, false)
}

// waitForPrompt is waitFor that also matches the unfinished last line (a
// prompt such as "login: " has no newline).
func (o *output) waitForPrompt(re *regexp.Regexp, from int, timeout time.Duration, stop <-chan struct{}) (idx int, at time.Time, ok bool) {
	return o.wait(re, from, timeout, stop, true)
}

func (o *output) wait(re *regexp.Regexp, from int, timeout time.Duration, stop <-chan struct{}, prompt bool) (idx int, at time.Time, ok bool) {
	deadline := time.After(timeout)
	for {
		o.mu.Lock()
		for i := from; i < len(o.lines); i++ {
			if re.MatchString(o.lines[i]) {
				o.mu.Unlock()
				return i, o.stamps[i], true
			}
		}
		from = len(o.lines)
		if prompt && len(o.partial) > 0 && re.MatchString(stripANSI(string(o.partial))) {
			o.mu.Unlock()
			return from, time.Now(), true
		}
		ch := o.changed
		o.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return 0, time.Time{}, false
		case <-stop:
			// One last look at what the process wrote before it died.
			stop = nil
			deadline = time.After(200 * time.Millisecond)
		}
	}
}

func (o *output) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.lines)
}

// tail is the last n lines.
func (o *output) tail(n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	lines := o.lines
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(append(lines, string(o.partial)), "\n")
}

func (o *output) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		o.file.Close()
		o.file = nil
	}
}

// startProc starts argv with env added to the environment; its output goes
// to logFile (and echo, if set).
func startProc(name string, argv []string, env []string, logFile string, echo io.Writer) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out := newOutput(logFile, echo)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), out: out, in: in}
	go func() {
		p.err = cmd.Wait()
		out.close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process by PID and waits for it.
func (p *proc) stop() {
	if p == nil || p.exited() {
		return
	}
	pid := p.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		<-p.done
	}
}

// run runs a command to completion and fails the test with its output if
// it fails.
func run(t testing.TB, env []string, argv ...string) string {
	t.Helper()
	out, err := runErr(env, argv...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return out
}

func runErr(env []string, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}
