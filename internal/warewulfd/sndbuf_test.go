package warewulfd

import (
	"bytes"
	"context"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func sndbuf(t *testing.T, c net.Conn) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF) })
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Big send buffers go to at most bigSendBuffers transfers at a time, and
// each socket gets its old size back.
func TestSendBuffers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	for range bigSendBuffers + 1 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		conns = append(conns, s)
	}
	var b sendBuffers
	var giveBack []func()
	old := sndbuf(t, conns[0])
	for i, c := range conns {
		giveBack = append(giveBack, b.lend(withConn(context.Background(), c)))
		got := sndbuf(t, c)
		switch {
		case i == bigSendBuffers && got != old:
			t.Errorf("connection %d got a big buffer (%d) past the limit of %d", i, got, bigSendBuffers)
		case i < bigSendBuffers && os.Geteuid() == 0 && got != 2*bigSendBuffer:
			t.Errorf("connection %d: SO_SNDBUF %d, want %d", i, got, 2*bigSendBuffer)
		case i < bigSendBuffers && got < old:
			t.Errorf("connection %d: SO_SNDBUF shrank from %d to %d", i, old, got)
		}
	}
	for i, c := range conns {
		giveBack[i]()
		if got := sndbuf(t, c); got != old {
			t.Errorf("connection %d: SO_SNDBUF %d after the transfer, want %d back", i, got, old)
		}
	}
	if n := b.lent.Load(); n != 0 {
		t.Errorf("%d buffers still lent", n)
	}
	if b.lend(context.Background()); b.lent.Load() != 0 {
		t.Error("a request without a TCP connection took a buffer")
	}
}

// A download past bigTransfer is sent whole, and its buffer given back.
func TestBigTransfer(t *testing.T) {
	e := newEnv(t, envOptions{nodesConf: nodesConf(""), imageSize: bigTransfer + 12345})
	for range 2 {
		resp, body := e.get("/image/52:54:00:00:00:01")
		if resp.StatusCode != 200 || !bytes.Equal(body, e.imageFile("image.img")) {
			t.Fatalf("%s, %d bytes", resp.Status, len(body))
		}
	}
	e.awaitLog(t, "stage=image", "status=200")
	if n := e.srv.sndbufs.lent.Load(); n != 0 {
		t.Errorf("%d buffers still lent after the transfers", n)
	}
}
