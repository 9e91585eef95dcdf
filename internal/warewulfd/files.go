package warewulfd

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// openFiles opens the parts of one response and describes them: total
// size, newest modification time, and a strong ETag from each part's
// inode, size and mtime (a rebuild renames a new file into place, so any
// rebuild changes it).
func openFiles(paths []string) (files []*os.File, size int64, mod time.Time, etag string, err error) {
	h := fnv.New64a()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			closeAll(files)
			return nil, 0, time.Time{}, "", err
		}
		files = append(files, f)
		fi, err := f.Stat()
		if err != nil {
			closeAll(files)
			return nil, 0, time.Time{}, "", err
		}
		if !fi.Mode().IsRegular() {
			closeAll(files)
			return nil, 0, time.Time{}, "", fmt.Errorf("%s is not a regular file", p)
		}
		size += fi.Size()
		if fi.ModTime().After(mod) {
			mod = fi.ModTime()
		}
		var ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		fmt.Fprintf(h, "%d/%d/%d;", ino, fi.Size(), fi.ModTime().UnixNano())
	}
	return files, size, mod, fmt.Sprintf(`"%016x"`, h.Sum64()), nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// within reports whether path, symlinks resolved, lies inside one of roots.
func within(path string, roots ...string) bool {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	for _, root := range roots {
		r, err := filepath.EvalSymlinks(root)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(r, real)
		if err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel) {
			return true
		}
	}
	return false
}

// multiFile reads several files as one, for http.ServeContent (Range,
// If-None-Match, Last-Modified). Its bytes still leave with sendfile: the
// response writer hands a copy of it to writeTo, which sends each part's
// span as an *os.File.
type multiFile struct {
	files []*os.File
	sizes []int64
	size  int64
	off   int64
}

func newMultiFile(files []*os.File) (*multiFile, error) {
	m := &multiFile{files: files}
	for _, f := range files {
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		m.sizes = append(m.sizes, fi.Size())
		m.size += fi.Size()
	}
	return m, nil
}

// locate returns the part holding offset off and the offset inside it.
func (m *multiFile) locate(off int64) (int, int64) {
	for i, sz := range m.sizes {
		if off < sz {
			return i, off
		}
		off -= sz
	}
	return len(m.sizes), 0
}

func (m *multiFile) Read(p []byte) (int, error) {
	if m.off >= m.size {
		return 0, io.EOF
	}
	i, local := m.locate(m.off)
	if rest := m.sizes[i] - local; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := m.files[i].ReadAt(p, local)
	m.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (m *multiFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += m.off
	case io.SeekEnd:
		offset += m.size
	default:
		return 0, errors.New("multiFile: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("multiFile: negative offset")
	}
	m.off = offset
	return offset, nil
}

// writeTo sends n bytes from the current offset to dst, part by part, each
// as a LimitedReader over an *os.File so the kernel copies it (sendfile).
func (m *multiFile) writeTo(dst io.ReaderFrom, n int64) (int64, error) {
	var total int64
	for n > 0 && m.off < m.size {
		i, local := m.locate(m.off)
		k := min(m.sizes[i]-local, n)
		if _, err := m.files[i].Seek(local, io.SeekStart); err != nil {
			return total, err
		}
		w, err := dst.ReadFrom(&io.LimitedReader{R: m.files[i], N: k})
		total += w
		m.off += w
		n -= w
		if err != nil {
			return total, err
		}
		if w < k {
			return total, io.ErrUnexpectedEOF
		}
	}
	return total, nil
}

// memReader is a body kept in memory; recorder sends it in one write.
type memReader struct {
	data []byte
	off  int64
}

func (m *memReader) Read(p []byte) (int, error) {
	if m.off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[m.off:])
	m.off += int64(n)
	return n, nil
}

func (m *memReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += m.off
	case io.SeekEnd:
		offset += int64(len(m.data))
	default:
		return 0, errors.New("memReader: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("memReader: negative offset")
	}
	m.off = offset
	return offset, nil
}

// recorder counts what a handler sends, for the log line and metrics,
// without hiding the connection's ReadFrom (sendfile).
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	err    error         // the last write error, for the log line of a cut transfer
	stall  time.Duration // see stallAfter
	conn   *net.TCPConn  // asked how much the peer has acknowledged
	acked  uint64
}

// stallAfter cuts the response only when it makes no progress for d: the
// write deadline moves on whenever bytes enter the socket or the peer
// acknowledges more of them. It is lifted when the handler returns, for
// the keep-alive requests that follow.
func (r *recorder) stallAfter(d time.Duration, conn *net.TCPConn) {
	r.stall, r.conn = d, conn
	r.acked, _ = ackedBytes(conn)
	r.deadline()
}

// ackedBytes is how many bytes the peer has acknowledged on conn
// (TCP_INFO). A socket buffer can take a minute to drain on a saturated
// link while every byte of it reaches the peer: that is progress too.
func ackedBytes(conn *net.TCPConn) (uint64, bool) {
	if conn == nil {
		return 0, false
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, false
	}
	var info *unix.TCPInfo
	if rc.Control(func(fd uintptr) { info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }) != nil || err != nil {
		return 0, false
	}
	return info.Bytes_acked, true
}

// moved reports whether the peer acknowledged bytes since the last look.
func (r *recorder) moved() bool {
	acked, ok := ackedBytes(r.conn)
	if !ok || acked == r.acked {
		return false
	}
	r.acked = acked
	return true
}

// lift removes the write deadline.
func (r *recorder) lift() {
	if r.stall > 0 {
		r.stall = 0
		http.NewResponseController(r.ResponseWriter).SetWriteDeadline(time.Time{})
	}
}

func (r *recorder) deadline() {
	if r.stall > 0 {
		http.NewResponseController(r.ResponseWriter).SetWriteDeadline(time.Now().Add(r.stall))
	}
}

// expected is the body length the response announced, 0 if none (HEAD,
// errors, no Content-Length).
func (r *recorder) expected(req *http.Request) int64 {
	if req.Method == http.MethodHead || (r.status != 0 && r.status != http.StatusOK && r.status != http.StatusPartialContent) {
		return 0
	}
	n, _ := strconv.ParseInt(r.Header().Get("Content-Length"), 10, 64)
	return n
}

// send hands src to rf (sendfile) again for as long as each call moves
// bytes before the deadline.
func (r *recorder) send(rf io.ReaderFrom, src io.Reader) (int64, error) {
	var total int64
	for {
		r.deadline() // a paced transfer may have waited for its turn
		n, err := rf.ReadFrom(src)
		total += n
		if r.stall > 0 && errors.Is(err, os.ErrDeadlineExceeded) && (n > 0 || r.moved()) {
			continue
		}
		if err != nil {
			r.err = err
		}
		return total, err
	}
}

// sender is a recorder's send as an io.ReaderFrom, for multiFile.
type sender struct {
	r  *recorder
	rf io.ReaderFrom
}

func (s sender) ReadFrom(src io.Reader) (int64, error) { return s.r.send(s.rf, src) }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	if err != nil {
		r.err = err
	}
	return n, err
}

// ReadFrom keeps the zero-copy path: http.ServeContent copies through it.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	rf, ok := r.ResponseWriter.(io.ReaderFrom)
	if !ok {
		n, err := io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
		r.bytes += n
		return n, err
	}
	if lr, ok := src.(*io.LimitedReader); ok {
		if m, ok := lr.R.(*memReader); ok { // one write, no copy
			if m.off >= int64(len(m.data)) {
				return 0, nil
			}
			n, err := r.Write(m.data[m.off:min(m.off+lr.N, int64(len(m.data)))])
			m.off += int64(n)
			lr.N -= int64(n)
			return int64(n), err
		}
		if m, ok := lr.R.(*multiFile); ok {
			n, err := m.writeTo(sender{r, rf}, lr.N)
			lr.N -= n
			r.bytes += n
			return n, err
		}
	}
	n, err := r.send(rf, src)
	r.bytes += n
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
