package warewulfd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pin/tftp/v3"
)

// tftpBlockSize is the largest block the server agrees to: a full
// Ethernet frame (1500 - 20 IP - 8 UDP - 4 TFTP).
const tftpBlockSize = 1468

// CheckTFTPName accepts a TFTP file name that stays inside the served
// directory: relative, no "..", no empty or "." elements, no NUL or
// backslash.
func CheckTFTPName(name string) error {
	if name == "" || len(name) > 255 || strings.ContainsAny(name, "\\\x00") || !fs.ValidPath(name) || name == "." {
		return fmt.Errorf("refused file name %q", name)
	}
	return nil
}

func (s *Server) newTFTP() *tftp.Server {
	srv := tftp.NewServer(s.tftpRead, nil) // read-only: no write handler
	srv.SetBlockSize(tftpBlockSize)
	srv.SetTimeout(5 * time.Second)
	srv.SetRetries(5)
	srv.SetHook(tftpHook{s})
	return srv
}

// tftpRead serves one file from the iPXE source directory.
func (s *Server) tftpRead(name string, rf io.ReaderFrom) error {
	err := s.tftpOpenAndSend(name, rf)
	if err != nil {
		s.metrics.tftpErrs.Add(1) // the hook logs it
	}
	return err
}

// openBootFile opens an iPXE binary in the iPXE source directory (for TFTP
// and /efi/). Names cannot climb out of it (CheckTFTPName), and os.Root
// keeps symbolic links inside it, unless only its owner can have put them
// there: Debian's ipxe.efi is a link to /boot/ipxe.efi.
func (s *Server) openBootFile(name string) (*os.File, error) {
	if err := CheckTFTPName(name); err != nil {
		return nil, err
	}
	cfg := s.Config()
	dir := cfg.IpxeSourceDir()
	if found, alias := cfg.IpxeBinary(name); alias {
		s.log.Debugf("ipxe: %q is not in %s: serving %q, the same binary under another name", name, dir, found)
		name = found
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	// O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused
	// below); it changes nothing for a regular file.
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && ownerOnly(dir, name) {
		f, err = os.OpenFile(filepath.Join(dir, name), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%q not found", name)
		}
		return nil, fmt.Errorf("%q: refused", name)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%q is not a file", name)
	}
	return f, nil
}

// ownerOnly reports whether every directory in which name is looked up,
// from dir on and following links wherever they lead, can be changed only
// by its owner, root or the user warewulfd runs as: then every link on
// the way is theirs. A link into a directory others can write is not:
// anyone could put a link to any file there.
func ownerOnly(dir, name string) bool {
	cur, rest := dir, strings.Split(name, "/")
	for hops := 0; len(rest) > 0; {
		part := rest[0]
		rest = rest[1:]
		switch part {
		case "", ".":
			continue
		case "..": // only from a link's target: cur has no links in it
			cur = filepath.Dir(cur)
			continue
		}
		p := filepath.Join(cur, part)
		fi, err := os.Lstat(p)
		if err != nil || !safeLookup(cur, fi) {
			return false
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = p // a directory, if anything follows
			continue
		}
		target, err := os.Readlink(p)
		if hops++; err != nil || hops > 40 {
			return false
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return true
}

// safeLookup reports whether entry, found in dir, can only have been put
// there by root or warewulfd's user: dir is theirs and nobody else may
// write to it, or it is sticky (as /tmp) and entry is theirs.
func safeLookup(dir string, entry fs.FileInfo) bool {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() || !trusted(fi) {
		return false
	}
	if fi.Mode().Perm()&0o022 == 0 {
		return true
	}
	return fi.Mode()&fs.ModeSticky != 0 && trusted(entry)
}

func trusted(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && (st.Uid == 0 || int(st.Uid) == os.Geteuid())
}

func (s *Server) tftpOpenAndSend(name string, rf io.ReaderFrom) error {
	if ok, err := s.tftpGrub(name, rf); ok {
		return err
	}
	f, err := s.openBootFile(name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(fi.Size())
	}
	_, err = rf.ReadFrom(f)
	return err
}

// tftpHook writes one log line per finished transfer.
type tftpHook struct{ s *Server }

// tftpLogName is a file name for the log: without its query, which may
// hold an asset key.
func tftpLogName(name string) string {
	name, _, _ = strings.Cut(name, "?")
	return name
}

func (h tftpHook) OnSuccess(st tftp.TransferStats) {
	h.s.metrics.tftp.Add(1)
	blksize := st.Opts["blksize"]
	if blksize == "" {
		blksize = "512"
	}
	h.s.log.WithFields(map[string]any{
		"file": tftpLogName(st.Filename), "peer": st.RemoteAddr.String(), "duration": st.Duration.Round(time.Millisecond).String(),
		"datagrams": st.DatagramsSent, "blksize": blksize,
	}).Info("tftp: served")
}

func (h tftpHook) OnFailure(st tftp.TransferStats, err error) {
	if st.Filename == "" || errors.Is(err, errTFTPLogged) { // socket errors at shutdown; logged already
		return
	}
	h.s.log.WithFields(map[string]any{"file": clip(tftpLogName(st.Filename)), "peer": st.RemoteAddr.String()}).Warn("tftp: " + clip(err.Error()))
}
