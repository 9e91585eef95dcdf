package bmc

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/testenv"
)

func TestEscapeReader(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"ls\r~.rest", "ls\r"},
		{"~.", ""},
		{"a~.b\n~~x\n~.", "a~.b\n~x\n"},
		{"\n~q\n&.", "\n~q\n&."},
	} {
		got, _ := io.ReadAll(&escapeReader{r: bufioReader(c.in), esc: '~', lineStart: true})
		if string(got) != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
	got, _ := io.ReadAll(&escapeReader{r: bufioReader("x\n&.y"), esc: '&', lineStart: true})
	if string(got) != "x\n" {
		t.Errorf("escape &: %q", got)
	}
}

// syncBuffer is a bytes.Buffer safe to read while the console writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestConsoleOverSOL: ipmi_sim's serial over LAN goes to a TCP port the
// test holds as the node's serial line. What the node prints reaches the
// console; a keystroke reaches the node; ~. ends the session.
func TestConsoleOverSOL(t *testing.T) {
	serial, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer serial.Close()
	b := testenv.StartBMC(t, testenv.BMCOptions{Addr: "127.0.0.1", Port: freeUDPPort(t), User: "admin", Password: "s3cret",
		SOL: fmt.Sprintf("tcp:%s", serial.Addr())})
	tg := simTarget(t, b, "s3cret")
	line := make(chan net.Conn, 1)
	go func() {
		c, err := serial.Accept()
		if err == nil {
			line <- c
		}
	}()
	var conn net.Conn
	select {
	case conn = <-line:
	case <-time.After(15 * time.Second):
		t.Fatal("ipmi_sim did not connect to the serial line")
	}
	defer conn.Close()

	old := ipmiRetries
	ipmiRetries = 1
	defer func() { ipmiRetries = old }()
	inR, inW := io.Pipe()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Console(context.Background(), tg, inR, out) }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s; console so far: %q", what, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("no banner", func() bool { return strings.Contains(out.String(), "[console of n1") })
	if _, err := conn.Write([]byte("node login: ")); err != nil {
		t.Fatal(err)
	}
	waitFor("the node's output did not reach the console", func() bool { return strings.Contains(out.String(), "node login: ") })
	inW.Write([]byte("r"))
	got := make([]byte, 1)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(conn, got); err != nil || got[0] != 'r' {
		t.Fatalf("keystroke at the node: %q %v", got, err)
	}
	// The BMC goes quiet longer than an exchange's retries (2 s here): the
	// console says so, reconnects, and goes on.
	b.Pause(4 * time.Second)
	waitFor("no reconnect", func() bool { return strings.Contains(out.String(), "reconnecting]") })
	time.Sleep(3 * time.Second)
	if _, err := conn.Write([]byte("after the outage")); err != nil {
		t.Fatal(err)
	}
	waitFor("no output after the reconnect", func() bool { return strings.Contains(out.String(), "after the outage") })
	inW.Write([]byte("s"))
	if _, err := io.ReadFull(conn, got); err != nil || got[0] != 's' {
		t.Fatalf("keystroke after the reconnect: %q %v", got, err)
	}
	inW.Write([]byte("\r~."))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("~. did not end the console")
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// TestKeyPumpAcrossSessions: a key typed after one SOL session ended goes
// to the next session, not to the reader the old one left behind.
func TestKeyPumpAcrossSessions(t *testing.T) {
	inR, inW := io.Pipe()
	p := newKeyPump(inR)
	stop1 := make(chan struct{})
	old := make(chan error, 1)
	go func() {
		_, err := keyView{p, stop1}.Read(make([]byte, 1))
		old <- err
	}()
	close(stop1)
	if err := <-old; err != io.EOF {
		t.Fatalf("the ended session's reader: %v, want EOF", err)
	}
	go inW.Write([]byte("k"))
	b := make([]byte, 1)
	if n, err := (keyView{p, make(chan struct{})}).Read(b); n != 1 || b[0] != 'k' || err != nil {
		t.Fatalf("the next session read %q %v", b[:n], err)
	}
	inW.Close()
	if _, err := (keyView{p, make(chan struct{})}).Read(b); err == nil || !p.done.Load() {
		t.Fatalf("after the input ended: %v, done %v", err, p.done.Load())
	}
}
