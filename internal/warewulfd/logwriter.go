package warewulfd

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// LogWriter gathers log lines and writes them out together at most every
// interval (or when a buffer fills): under a boot storm one write per
// request line, to a file or journald's pipe, was a fifth of the daemon's
// CPU. A line is written whole or not at all, and Close writes what is
// left.
type LogWriter struct {
	mu     sync.Mutex
	w      *bufio.Writer
	closed bool // after Close every line goes straight out
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

// logBuffer holds the lines of one interval of a busy server.
const logBuffer = 64 << 10

// NewLogWriter buffers writes to out and flushes them every interval.
func NewLogWriter(out io.Writer, interval time.Duration) *LogWriter {
	l := &LogWriter{w: bufio.NewWriterSize(out, logBuffer), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.Flush()
			case <-l.stop:
				l.Flush()
				return
			}
		}
	}()
	return l
}

// Write takes one log line (logrus writes each entry in one call).
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(p) > l.w.Available() && l.w.Buffered() > 0 {
		l.w.Flush() // keep lines whole
	}
	n, err := l.w.Write(p)
	if err == nil && l.closed {
		err = l.w.Flush()
	}
	return n, err
}

// Flush writes out what is buffered.
func (l *LogWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Flush()
}

// Close stops the flusher and writes what is left; later writes go
// straight out.
func (l *LogWriter) Close() error {
	l.once.Do(func() { close(l.stop) })
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return l.w.Flush()
}
