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
	// The banner comes before the session: what the node prints before
	// the BMC has one goes nowhere.
	nodeSays(t, conn, out, "node login: ")
	inW.Write([]byte("r"))
	got := make([]byte, 1)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(conn, got); err != nil || got[0] != 'r' {
		t.Fatalf("keystroke at the node: %q %v", got, err)
	}
	// The BMC goes quiet longer than an exchange's retries (2 s here): the
	// console says so, reconnects, and goes on. A key typed while the BMC
	// says nothing waits for the next session.
	paused := make(chan struct{})
	go func() {
		b.Pause(4 * time.Second)
		close(paused)
	}()
	time.Sleep(time.Second)
	inW.Write([]byte("t"))
	<-paused
	waitFor("no reconnect", func() bool { return strings.Contains(out.String(), "reconnecting]") })
	if _, err := io.ReadFull(conn, got); err != nil || got[0] != 't' {
		t.Fatalf("the key typed during the outage, after the reconnect: %q %v", got, err)
	}
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

// nodeSays writes text on the node's serial line until the console shows
// it: until the console's session is up, the BMC drops what the node prints.
func nodeSays(t *testing.T, conn net.Conn, out *syncBuffer, text string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("%q from the node did not reach the console: %q", text, out.String())
		}
		if _, err := conn.Write([]byte(text)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestConsoleOutlivesSessionTimeout: ipmi_sim closes a session 30 s after
// its last IPMI message; SOL packets do not count. The console's keepalive
// holds the session: output and keys flow past the 30 s in the same
// session, with no reconnect.
func TestConsoleOutlivesSessionTimeout(t *testing.T) {
	testenv.Long(t, "a console held past ipmi_sim's 30 s session timeout")
	serial, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer serial.Close()
	b := testenv.StartBMC(t, testenv.BMCOptions{Addr: "127.0.0.1", Port: freeUDPPort(t), User: "admin", Password: "s3cret",
		SOL: fmt.Sprintf("tcp:%s", serial.Addr())})
	tg := simTarget(t, b, "s3cret")
	serial.(*net.TCPListener).SetDeadline(time.Now().Add(15 * time.Second))
	conn, err := serial.Accept()
	if err != nil {
		t.Fatalf("ipmi_sim did not connect to the serial line: %v", err)
	}
	defer conn.Close()

	inR, inW := io.Pipe()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Console(context.Background(), tg, inR, out) }()
	waitFor := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s; console so far: %q", what, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("no banner", 10*time.Second, func() bool { return strings.Contains(out.String(), "[console of n1") })
	nodeSays(t, conn, out, "at the start\r\n")
	start := time.Now()
	time.Sleep(40*time.Second - time.Since(start))
	conn.Write([]byte("40 s later\r\n"))
	waitFor("no output 40 s into the session", 10*time.Second, func() bool { return strings.Contains(out.String(), "40 s later") })
	inW.Write([]byte("k"))
	got := make([]byte, 1)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(conn, got); err != nil || got[0] != 'k' {
		t.Fatalf("keystroke 40 s into the session: %q %v; console: %q", got, err, out.String())
	}
	if strings.Contains(out.String(), "reconnecting") {
		t.Errorf("the session did not hold: %q", out.String())
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

// TestKeyViewWaitsForTheBMC: a session takes a key only when its BMC has
// answered lately, and one key per answer; a key it cannot take stays for
// the next session.
func TestKeyViewWaitsForTheBMC(t *testing.T) {
	inR, inW := io.Pipe()
	defer inW.Close()
	p := newKeyPump(inR)
	go inW.Write([]byte("abc"))

	link := newRxLink()
	link.fresh = 200 * time.Millisecond
	link.last.Store(time.Now().Add(-time.Second).UnixNano()) // silent for a second
	stop := make(chan struct{})
	v := &keyView{p: p, stop: stop, link: link}
	got := make(chan byte, 3)
	go func() {
		b := make([]byte, 1)
		for {
			if _, err := v.Read(b); err != nil {
				return
			}
			got <- b[0]
		}
	}()
	expect := func(want byte, what string) {
		t.Helper()
		select {
		case k := <-got:
			if want == 0 || k != want {
				t.Fatalf("%s: the session took %q", what, k)
			}
		case <-time.After(300 * time.Millisecond):
			if want != 0 {
				t.Fatalf("%s: the session took no key", what)
			}
		}
	}
	expect(0, "a silent BMC")
	link.seen()
	expect('a', "the BMC answered")
	expect(0, "no answer since the last key")
	link.seen()
	expect('b', "an answer since the last key")
	// The BMC falls silent and the session ends: c is the next session's.
	time.Sleep(300 * time.Millisecond)
	expect(0, "silent again")
	close(stop)
	b := make([]byte, 1)
	if n, err := (&keyView{p: p, stop: make(chan struct{})}).Read(b); n != 1 || b[0] != 'c' || err != nil {
		t.Fatalf("the next session read %q %v", b[:n], err)
	}
}

// TestKeyPumpAcrossSessions: a key typed after one SOL session ended goes
// to the next session, not to the reader the old one left behind.
func TestKeyPumpAcrossSessions(t *testing.T) {
	inR, inW := io.Pipe()
	p := newKeyPump(inR)
	stop1 := make(chan struct{})
	old := make(chan error, 1)
	go func() {
		_, err := (&keyView{p: p, stop: stop1}).Read(make([]byte, 1))
		old <- err
	}()
	close(stop1)
	if err := <-old; err != io.EOF {
		t.Fatalf("the ended session's reader: %v, want EOF", err)
	}
	go inW.Write([]byte("k"))
	b := make([]byte, 1)
	if n, err := (&keyView{p: p, stop: make(chan struct{})}).Read(b); n != 1 || b[0] != 'k' || err != nil {
		t.Fatalf("the next session read %q %v", b[:n], err)
	}
	inW.Close()
	if _, err := (&keyView{p: p, stop: make(chan struct{})}).Read(b); err == nil || !p.done.Load() {
		t.Fatalf("after the input ended: %v, done %v", err, p.done.Load())
	}
}
