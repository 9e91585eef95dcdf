package pssh

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer lets Run's goroutines write while the test reads after.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestRunPrefixesAndExits(t *testing.T) {
	// A stand-in for ssh: prints two lines per "host", one on stderr, and
	// exits with the host's last digit.
	rsh := filepath.Join(t.TempDir(), "rsh")
	script := "#!/bin/sh\nhost=$2\nshift 2\necho \"out $host $*\"\necho \"second $host\"\necho \"err $host\" >&2\nexit ${host##*.}\n"
	if err := os.WriteFile(rsh, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	hosts := []Host{{"n1", "10.0.0.0"}, {"n2", "10.0.0.3"}, {"n3", "10.0.0.0"}}
	var out, errOut lockedBuffer
	start := time.Now()
	exits := Run(context.Background(), hosts, Options{Rsh: rsh, Args: []string{"-x"}, Fanout: 2, Sleep: 200 * time.Millisecond, Command: []string{"uptime", "-p"}}, &out, &errOut)
	for _, want := range []string{"n1: out 10.0.0.0 uptime -p\n", "n1: second 10.0.0.0\n", "n2: out 10.0.0.3 uptime -p\n", "n3: second 10.0.0.0\n"} {
		if !strings.Contains(out.b.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.b.String())
		}
	}
	if !strings.Contains(errOut.b.String(), "n2: err 10.0.0.3\n") {
		t.Errorf("stderr: %s", errOut.b.String())
	}
	if exits[0].Code != 0 || exits[1].Code != 3 || exits[2].Code != 0 {
		t.Errorf("exits: %+v", exits)
	}
	// Fanout 2 with a 200 ms sleep per slot: the third node waits for one.
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("three nodes at fanout 2 with --sleep took only %v", d)
	}
	got := strings.Join(Summary(exits), "|")
	if got != "exit 0 (2): n1 n3|exit 3 (1): n2" {
		t.Errorf("summary: %s", got)
	}
	exits = Run(context.Background(), []Host{{"n4", "x"}}, Options{Rsh: "/nonexistent/ssh", Fanout: 1}, &out, &errOut)
	if exits[0].Code != -1 || exits[0].Err == nil || Summary(exits)[0] != "did not run (1): n4" {
		t.Errorf("missing rsh: %+v %v", exits, Summary(exits))
	}
}

func TestDryRun(t *testing.T) {
	var out bytes.Buffer
	exits := Run(context.Background(), []Host{{"n1", "10.0.0.1"}}, Options{Rsh: "/usr/bin/ssh", Args: []string{"-o", "BatchMode=yes"}, DryRun: true, Command: []string{"hostname"}}, &out, &out)
	if out.String() != "n1: /usr/bin/ssh -o BatchMode=yes 10.0.0.1 hostname\n" || exits[0].Node != "" {
		t.Errorf("dry run: %q %+v", out.String(), exits)
	}
}
