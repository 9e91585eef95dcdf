package archive

import (
	"fmt"
	"io"
	"runtime"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression names how an archive is compressed; the value is also the
// file suffix and the `compress=` query value.
type Compression string

const (
	None Compression = ""
	Gzip Compression = "gz"
	Zstd Compression = "zstd"
)

// ParseCompression accepts "gz", "gzip", "zstd", "none" or "".
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "gz", "gzip":
		return Gzip, nil
	case "zstd", "zst":
		return Zstd, nil
	case "", "none":
		return None, nil
	}
	return None, fmt.Errorf("compression %q is not gz, zstd or none", s)
}

// Suffix is the file name suffix for this compression (".gz", ".zst", "").
func (c Compression) Suffix() string {
	switch c {
	case Gzip:
		return ".gz"
	case Zstd:
		return ".zst"
	}
	return ""
}

// Compressor returns a writer that compresses into w, using every core.
// Closing it flushes the compressed stream but not w.
func Compressor(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Gzip:
		z, err := pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
		if err != nil {
			return nil, err
		}
		if err := z.SetConcurrency(1<<20, 2*runtime.GOMAXPROCS(0)); err != nil {
			return nil, err
		}
		return z, nil
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	case None:
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Writer is a compressed cpio archive being written.
type Writer struct {
	*CpioWriter
	z io.WriteCloser
}

// NewWriter writes a cpio archive compressed with c into w.
func NewWriter(w io.Writer, c Compression) (*Writer, error) {
	z, err := Compressor(w, c)
	if err != nil {
		return nil, err
	}
	return &Writer{CpioWriter: NewCpioWriter(z), z: z}, nil
}

// Close writes the trailer and finishes the compressed stream.
func (w *Writer) Close() error {
	if err := w.CpioWriter.Close(); err != nil {
		return err
	}
	return w.z.Close()
}
