// Package pssh runs one command on many nodes over ssh at once, each line
// of output prefixed with its node, and sums up the exit codes.
package pssh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"
)

// Host is one node and the address ssh connects to.
type Host struct {
	Node, Addr string
}

// Options says how to run.
type Options struct {
	Rsh     string   // the ssh program
	Args    []string // ssh options before the address (-i KEY, -o ...)
	Fanout  int
	Sleep   time.Duration // a slot waits this long after each node
	DryRun  bool          // print the commands instead
	Command []string
}

// Exit is how the command ended on one node: its exit code, or -1 with Err
// when it could not run.
type Exit struct {
	Node string
	Code int
	Err  error
}

// Run runs the command on every host and returns their exits in host order.
// Output lines go to out and errOut as "NODE: line", whole lines at a time.
func Run(ctx context.Context, hosts []Host, o Options, out, errOut io.Writer) []Exit {
	if o.Fanout < 1 {
		o.Fanout = 1
	}
	var mu sync.Mutex // one whole line at a time on each stream
	exits := make([]Exit, len(hosts))
	sem := make(chan struct{}, o.Fanout)
	var wg sync.WaitGroup
	for i, h := range hosts {
		argv := append(append(append([]string{o.Rsh}, o.Args...), h.Addr), o.Command...)
		if o.DryRun {
			fmt.Fprintf(out, "%s: %s\n", h.Node, strings.Join(argv, " "))
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() {
				if o.Sleep > 0 {
					select {
					case <-time.After(o.Sleep):
					case <-ctx.Done():
					}
				}
				<-sem
			}()
			exits[i] = runOne(ctx, h.Node, argv, &mu, out, errOut)
		}()
	}
	wg.Wait()
	return exits
}

func runOne(ctx context.Context, node string, argv []string, mu *sync.Mutex, out, errOut io.Writer) Exit {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Exit{Node: node, Code: -1, Err: err}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return Exit{Node: node, Code: -1, Err: err}
	}
	if err := cmd.Start(); err != nil {
		return Exit{Node: node, Code: -1, Err: err}
	}
	var copies sync.WaitGroup
	for _, s := range []struct {
		r io.Reader
		w io.Writer
	}{{stdout, out}, {stderr, errOut}} {
		copies.Add(1)
		go func() {
			defer copies.Done()
			sc := bufio.NewScanner(s.r)
			sc.Buffer(make([]byte, 64*1024), 1024*1024)
			for sc.Scan() {
				mu.Lock()
				fmt.Fprintf(s.w, "%s: %s\n", node, sc.Text())
				mu.Unlock()
			}
		}()
	}
	copies.Wait()
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return Exit{Node: node}
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return Exit{Node: node, Code: ee.ExitCode()}
	default:
		return Exit{Node: node, Code: -1, Err: err}
	}
}

// Summary is one line per exit code: "exit 0: n1 n2", failures to run last.
func Summary(exits []Exit) []string {
	by := map[int][]string{}
	var codes []int
	for _, e := range exits {
		if e.Node == "" {
			continue
		}
		if _, ok := by[e.Code]; !ok {
			codes = append(codes, e.Code)
		}
		by[e.Code] = append(by[e.Code], e.Node)
	}
	sort.Ints(codes)
	var lines []string
	for _, c := range codes {
		label := fmt.Sprintf("exit %d", c)
		if c == -1 {
			label = "did not run"
		}
		lines = append(lines, fmt.Sprintf("%s (%d): %s", label, len(by[c]), strings.Join(by[c], " ")))
	}
	return lines
}
