package archive

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Decompressor returns a reader of r's bytes decompressed, choosing gzip,
// zstd or none from the first bytes, as the kernel does for an initrd.
// Concatenated members or frames read as one stream.
func Decompressor(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, err := br.Peek(4)
	if err != nil && len(magic) == 0 {
		return nil, fmt.Errorf("archive: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		z, err := pgzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("archive: gzip: %w", err)
		}
		return z, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(br, zstd.WithDecoderLowmem(false), zstd.WithDecoderMaxWindow(1<<30))
		if err != nil {
			return nil, fmt.Errorf("archive: zstd: %w", err)
		}
		return z.IOReadCloser(), nil
	case bytes.HasPrefix(magic, []byte("0707")):
		return io.NopCloser(br), nil
	}
	return nil, fmt.Errorf("archive: starts with %x: not gzip, zstd or cpio", magic)
}

// CpioReader reads newc entries from one or more concatenated archives
// (NUL padding between them allowed), as the kernel unpacks an initramfs.
type CpioReader struct {
	r      *bufio.Reader
	remain int64 // body bytes of the current entry not yet read
	pad    int
	// Archives counts the trailers passed: inode numbers (hard links)
	// are unique only within one archive.
	Archives int
}

// NewCpioReader reads newc archives from r.
func NewCpioReader(r io.Reader) *CpioReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 1<<20)
	}
	return &CpioReader{r: br}
}

// Next skips what is left of the current entry and returns the next
// header; io.EOF after the last archive. Trailers are not returned.
func (c *CpioReader) Next() (*Header, error) {
	if _, err := c.r.Discard(int(c.remain) + c.pad); err != nil && c.remain+int64(c.pad) > 0 {
		return nil, fmt.Errorf("archive: cpio: %w", unexpected(err))
	}
	c.remain, c.pad = 0, 0
	for {
		// Padding between archives.
		b, err := c.r.Peek(1)
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			return nil, fmt.Errorf("archive: cpio: %w", err)
		}
		if b[0] == 0 {
			c.r.Discard(1)
			continue
		}
		break
	}
	var buf [110]byte
	if _, err := io.ReadFull(c.r, buf[:]); err != nil {
		return nil, fmt.Errorf("archive: cpio: header: %w", unexpected(err))
	}
	if string(buf[:6]) != "070701" && string(buf[:6]) != "070702" {
		return nil, fmt.Errorf("archive: cpio: bad magic %q (only newc is read)", buf[:6])
	}
	var f [13]uint64
	for i := range f {
		v, err := strconv.ParseUint(string(buf[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("archive: cpio: bad header field %q", buf[6+8*i:14+8*i])
		}
		f[i] = v
	}
	nameLen := int(f[11])
	if nameLen < 1 || nameLen > 1<<16 {
		return nil, fmt.Errorf("archive: cpio: name length %d", nameLen)
	}
	name := make([]byte, nameLen+pad4(110+nameLen))
	if _, err := io.ReadFull(c.r, name); err != nil {
		return nil, fmt.Errorf("archive: cpio: name: %w", unexpected(err))
	}
	h := &Header{
		Name: string(bytes.TrimRight(name[:nameLen], "\x00")), Inode: f[0], Mode: uint32(f[1]),
		UID: uint32(f[2]), GID: uint32(f[3]), Nlink: uint32(f[4]), Mtime: int64(f[5]),
		Size: int64(f[6]), RdevMajor: uint32(f[9]), RdevMinor: uint32(f[10]),
	}
	c.remain, c.pad = h.Size, pad4(int(h.Size&3))
	if h.Name == trailer {
		c.Archives++
		return c.Next()
	}
	return h, nil
}

// Read reads the current entry's body.
func (c *CpioReader) Read(p []byte) (int, error) {
	if c.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.remain {
		p = p[:c.remain]
	}
	n, err := c.r.Read(p)
	c.remain -= int64(n)
	if err == io.EOF && c.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// WriteTo copies the rest of the current body to w.
func (c *CpioReader) WriteTo(w io.Writer) (int64, error) {
	n, err := io.CopyN(w, c.r, c.remain)
	c.remain -= n
	return n, unexpected(err)
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
