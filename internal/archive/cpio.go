// Package archive writes compressed cpio (newc) archives: the one format of
// every initrd the project builds, images and overlays alike.
//
// It writes newc itself rather than through a cpio library because the
// archives must carry device numbers (rdevmajor/rdevminor) and be
// byte-for-byte deterministic; the format is a fixed 110-byte header.
package archive

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Header is one cpio entry. Mode holds the file type bits as in stat(2)
// (S_IFREG, S_IFDIR, ...) plus the permission, setuid, setgid and sticky
// bits.
type Header struct {
	Name                 string // path inside the archive, without a leading "/"
	Mode                 uint32
	UID, GID             uint32
	Nlink                uint32
	Mtime                int64
	Size                 int64
	Inode                uint64
	RdevMajor, RdevMinor uint32
}

// File type bits of Header.Mode.
const (
	TypeMask  = 0o170000
	TypeSock  = 0o140000
	TypeLink  = 0o120000 // symlink: the body is the target
	TypeReg   = 0o100000
	TypeBlock = 0o060000
	TypeDir   = 0o040000
	TypeChar  = 0o020000
	TypeFifo  = 0o010000
)

const trailer = "TRAILER!!!"

// maxField is the largest value of a newc header field (8 hex digits).
const maxField = 1<<32 - 1

// CpioWriter writes uncompressed newc entries.
type CpioWriter struct {
	// Block, when set, pads the archive after its trailer to a multiple of
	// Block bytes, as GNU cpio pads its output to 512-byte blocks.
	Block int

	w       *bufio.Writer
	n       int64 // bytes written so far
	remain  int64 // body bytes still owed for the current entry
	pad     int   // padding after the current body
	nextIno uint64
	closed  bool
}

// NewCpioWriter writes newc entries to w.
func NewCpioWriter(w io.Writer) *CpioWriter {
	return &CpioWriter{w: bufio.NewWriterSize(w, 1<<20), nextIno: 1}
}

// Size is the length of the (uncompressed) archive written so far: all of
// it after Close.
func (c *CpioWriter) Size() int64 { return c.n }

// WriteHeader starts an entry; its body (Size bytes) follows through Write.
// An Inode of 0 is assigned the next number in sequence, so archives are
// deterministic without the caller tracking inodes.
func (c *CpioWriter) WriteHeader(h *Header) error {
	ino := h.Inode
	if ino == 0 {
		ino = c.nextIno
		c.nextIno++
	}
	return c.writeHeader(h, ino)
}

func (c *CpioWriter) writeHeader(h *Header, ino uint64) error {
	if c.closed {
		return errors.New("archive: write after close")
	}
	if c.remain != 0 {
		return fmt.Errorf("archive: %d body bytes missing before %s", c.remain, h.Name)
	}
	if h.Size < 0 || h.Size > maxField {
		return fmt.Errorf("archive: %s: %d bytes; a newc archive holds files up to 4 GiB", h.Name, h.Size)
	}
	if err := c.writePad(); err != nil {
		return err
	}
	nlink := h.Nlink
	if nlink == 0 {
		nlink = 1
		if h.Mode&TypeMask == TypeDir {
			nlink = 2
		}
	}
	var buf [110]byte
	copy(buf[:6], "070701")
	// newc has 32-bit times: clamp those before 1970 or after 2106.
	mtime := uint64(min(max(h.Mtime, 0), maxField))
	fields := [13]uint64{ino, uint64(h.Mode), uint64(h.UID), uint64(h.GID), uint64(nlink),
		mtime, uint64(h.Size), 0, 0, uint64(h.RdevMajor), uint64(h.RdevMinor),
		uint64(len(h.Name) + 1), 0}
	for i, v := range fields {
		putHex(buf[6+8*i:14+8*i], v)
	}
	if _, err := c.w.Write(buf[:]); err != nil {
		return err
	}
	if _, err := c.w.WriteString(h.Name); err != nil {
		return err
	}
	if err := c.w.WriteByte(0); err != nil {
		return err
	}
	c.n += int64(len(buf) + len(h.Name) + 1)
	if err := c.zeros(pad4(110 + len(h.Name) + 1)); err != nil {
		return err
	}
	c.remain = h.Size
	c.pad = pad4(int(h.Size & 3))
	return nil
}

// Write writes the current entry's body.
func (c *CpioWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.remain {
		return 0, fmt.Errorf("archive: body longer than its header's size")
	}
	n, err := c.w.Write(p)
	c.remain -= int64(n)
	c.n += int64(n)
	return n, err
}

// ReadFrom copies an entry's body from r, which must yield exactly the
// header's Size bytes.
func (c *CpioWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.CopyN(c.w, r, c.remain)
	c.remain -= n
	c.n += n
	if err == io.EOF {
		err = fmt.Errorf("archive: body shorter than its header's size")
	}
	return n, err
}

// WriteFile writes a whole entry whose body is data.
func (c *CpioWriter) WriteFile(h *Header, data []byte) error {
	h.Size = int64(len(data))
	if err := c.WriteHeader(h); err != nil {
		return err
	}
	_, err := c.Write(data)
	return err
}

// Close writes the trailer and flushes. It does not close the underlying
// writer.
func (c *CpioWriter) Close() error {
	if c.closed {
		return nil
	}
	if err := c.writeHeader(&Header{Name: trailer, Nlink: 1}, 0); err != nil {
		return err
	}
	if err := c.writePad(); err != nil {
		return err
	}
	if c.Block > 0 {
		if rest := int(c.Size() % int64(c.Block)); rest != 0 {
			if _, err := c.w.Write(make([]byte, c.Block-rest)); err != nil {
				return err
			}
			c.n += int64(c.Block - rest)
		}
	}
	c.closed = true
	return c.w.Flush()
}

func (c *CpioWriter) writePad() error {
	err := c.zeros(c.pad)
	c.pad = 0
	return err
}

var zeroPad [4]byte

func (c *CpioWriter) zeros(n int) error {
	_, err := c.w.Write(zeroPad[:n])
	c.n += int64(n)
	return err
}

func pad4(n int) int { return (4 - n&3) & 3 }

const hexdigits = "0123456789abcdef"

func putHex(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = hexdigits[v&0xf]
		v >>= 4
	}
}
