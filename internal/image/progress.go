package image

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// progress shows layer downloads: bars on a terminal, a log line per
// layer otherwise.
type progress struct {
	p   *mpb.Progress
	out io.Writer
	bar *mpb.Bar
}

func newProgress(out io.Writer) *progress {
	if out == nil {
		return &progress{}
	}
	// A terminal of unknown width (a bare pty) gets log lines too.
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) && termWidth(f) > 0 {
		return &progress{p: mpb.New(mpb.WithOutput(out), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond))}
	}
	return &progress{out: out}
}

func (p *progress) layer(r io.Reader, digest string, size int64, i, n int) io.Reader {
	short := digest
	if len(short) > 12 {
		short = short[:12]
	}
	name := fmt.Sprintf("layer %d/%d %s", i+1, n, short)
	switch {
	case p.p != nil:
		if size < 0 {
			size = 0
		}
		p.bar = p.p.AddBar(size,
			mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f"), decor.Name(" "), decor.AverageSpeed(decor.SizeB1024(0), "% .1f")))
		if size == 0 {
			p.bar.SetTotal(-1, false)
		}
		return &completer{Reader: p.bar.ProxyReader(r), bar: p.bar}
	case p.out != nil:
		logrus.Infof("applying %s (%d bytes)", name, size)
		fmt.Fprintf(p.out, "applying %s (%s)\n", name, sizeString(size))
	}
	return r
}

// completer marks a bar complete at EOF even when the size was unknown.
type completer struct {
	io.Reader
	bar *mpb.Bar
}

func (c *completer) Read(b []byte) (int, error) {
	n, err := c.Reader.Read(b)
	if err == io.EOF {
		c.bar.SetTotal(-1, true)
	}
	return n, err
}

func (p *progress) abort() {
	if p.bar != nil {
		p.bar.Abort(false)
	}
}

func (p *progress) wait() {
	if p.p != nil {
		if p.bar != nil && !p.bar.Completed() {
			p.bar.Abort(false)
		}
		p.p.Wait()
	}
}

func sizeString(n int64) string {
	if n < 0 {
		return "size unknown"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func termWidth(f *os.File) int {
	w, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return w
}
