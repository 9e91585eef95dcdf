package warewulfd

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is an io.Writer that counts its writes.
type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func (b *lockedBuffer) get() (string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.writes
}

func TestLogWriter(t *testing.T) {
	out := &lockedBuffer{}
	l := NewLogWriter(out, 50*time.Millisecond)
	line := "level=info msg=served node=n1\n"
	for range 100 {
		l.Write([]byte(line))
	}
	if s, _ := out.get(); s != "" {
		t.Fatalf("written before the interval: %d bytes", len(s))
	}
	time.Sleep(200 * time.Millisecond)
	if s, w := out.get(); s != strings.Repeat(line, 100) || w != 1 {
		t.Fatalf("after the interval: %d bytes in %d writes", len(s), w)
	}

	// A full buffer goes out at once, in whole lines.
	long := strings.Repeat("x", 999) + "\n"
	for range logBuffer/len(long) + 10 {
		l.Write([]byte(long))
	}
	s, w := out.get()
	if w < 2 || (len(s)-100*len(line))%len(long) != 0 {
		t.Fatalf("full buffer: %d writes, %d bytes", w, len(s))
	}

	// Close writes the rest; later lines go straight out.
	l.Write([]byte("last\n"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if s, _ := out.get(); !strings.HasSuffix(s, "last\n") || strings.Count(s, long) != logBuffer/len(long)+10 {
		t.Fatalf("after Close: %q", s[max(0, len(s)-40):])
	}
	l.Write([]byte("after\n"))
	if s, _ := out.get(); !strings.HasSuffix(s, "after\n") {
		t.Fatal("a line after Close was held back")
	}
	l.Close() // twice is fine
}
