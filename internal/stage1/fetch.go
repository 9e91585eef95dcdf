// Package stage1 is the node side of the two-stage boot: a small program,
// run as /init from an initramfs of its own, that brings up the network,
// downloads the node's image over HTTP (resuming after a cut, retrying
// with backoff, honouring the server's 503 Retry-After, checking the
// digest), unpacks it while it arrives into a tmpfs, adds the kernel
// modules and overlays, and switches root into it.
package stage1

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DigestHeader carries the SHA-256 of the whole file, as RFC 9530 writes
// it (sha-256=:BASE64:); it describes the file, so a 206 carries it too.
const DigestHeader = "Repr-Digest"

// FormatDigest writes a SHA-256 sum as a DigestHeader value.
func FormatDigest(sum []byte) string {
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum) + ":"
}

// parseDigest reads the sha-256 member of a DigestHeader value.
func parseDigest(v string) ([]byte, bool) {
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !strings.EqualFold(k, "sha-256") {
			continue
		}
		val = strings.Trim(val, ":")
		sum, err := base64.StdEncoding.DecodeString(val)
		if err == nil && len(sum) == sha256.Size {
			return sum, true
		}
	}
	return nil, false
}

// Retry says how a Download retries.
type Retry struct {
	// Base and Max bound the backoff between attempts: each wait is drawn
	// at random from [0, min(Max, Base*2^n)] ("full jitter"), so nodes cut
	// off together do not come back together.
	Base, Max time.Duration
	// Give up after this long without a single byte of progress.
	Stall time.Duration
	// MaxRetryAfter caps a server's Retry-After.
	MaxRetryAfter time.Duration
	// Idle drops a connection that brought nothing for this long (a link
	// that went down leaves TCP waiting for minutes) and resumes on a new
	// one.
	Idle time.Duration
}

// DefaultRetry suits a boot: a node has nothing better to do than wait,
// but a dead server should be reported within minutes.
var DefaultRetry = Retry{Base: 500 * time.Millisecond, Max: 30 * time.Second, Stall: 10 * time.Minute, MaxRetryAfter: 5 * time.Minute, Idle: 3 * time.Second}

// Download is an HTTP GET that reads as one stream however many times the
// connection breaks: after a cut it asks again for the rest (Range, with
// If-Range naming the ETag, so a rebuilt file is not spliced onto the old
// one), and at the end it checks the digest the server announced.
type Download struct {
	URL    string
	Client *http.Client
	Retry  Retry
	Logf   func(format string, args ...any)
	// Progress, when set, is called each time another tenth of the file
	// has arrived.
	Progress func(off, size int64)

	ctx      context.Context
	body     io.ReadCloser
	off      int64 // bytes delivered to the reader
	size     int64 // of the whole file; -1 unknown
	etag     string
	digest   []byte
	h        hash.Hash
	attempt  int // failed attempts since the last progress
	progress time.Time
	done     bool
	tenth    int64        // the last tenth reported to Progress
	waiting  atomic.Int64 // UnixNano since a Read has waited on the body (0: none is), for the watchdog
	stopDog  chan struct{}

	// Resumes counts the requests that continued a cut download;
	// Waits the 503 answers that asked us to come back later.
	Resumes, Waits int
}

// NewDownload prepares a download of url; nothing is sent before the
// first Read.
func NewDownload(ctx context.Context, client *http.Client, url string) *Download {
	if client == nil {
		client = http.DefaultClient
	}
	return &Download{URL: url, Client: client, Retry: DefaultRetry, ctx: ctx, size: -1,
		h: sha256.New(), Logf: func(string, ...any) {}}
}

// Size is the length of the whole file once the first response came
// (-1 before, or when the server did not say).
func (d *Download) Size() int64 { return d.size }

// Offset is how many bytes have been read.
func (d *Download) Offset() int64 { return d.off }

// Verified reports whether the server sent a digest (checked at EOF).
func (d *Download) Verified() bool { return d.digest != nil }

// ErrChanged means the file changed on the server during the download:
// what was read so far belongs to another version, start over.
var ErrChanged = errors.New("the file changed on the server during the download")

// Read implements io.Reader. It returns an error only when retrying is
// pointless: the file changed, the server refuses for good (4xx), the
// digest is wrong, nothing arrived for Retry.Stall, or ctx ended.
func (d *Download) Read(p []byte) (int, error) {
	if d.done {
		return 0, io.EOF
	}
	if d.progress.IsZero() {
		d.progress = time.Now()
	}
	for {
		if d.body == nil {
			if err := d.open(); err != nil {
				var perm *permanent
				if errors.As(err, &perm) || errors.Is(err, ErrChanged) || d.ctx.Err() != nil {
					return 0, err
				}
				if err := d.backoff(err); err != nil {
					return 0, err
				}
				continue
			}
		}
		d.waiting.Store(time.Now().UnixNano())
		n, err := d.body.Read(p)
		d.waiting.Store(0)
		if n > 0 {
			d.h.Write(p[:n])
			d.off += int64(n)
			d.attempt, d.progress = 0, time.Now()
			if d.Progress != nil && d.size > 0 {
				if t := d.off * 10 / d.size; t > d.tenth {
					d.tenth = t
					d.Progress(d.off, d.size)
				}
			}
		}
		if err == io.EOF && (d.size < 0 || d.off == d.size) {
			d.drop()
			d.done = true
			if err := d.check(); err != nil {
				return n, err
			}
			if n > 0 {
				return n, nil
			}
			return 0, io.EOF
		}
		if err != nil {
			d.drop()
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			d.Logf("download of %s cut at %d of %d bytes: %v", d.URL, d.off, d.size, err)
			if n > 0 {
				return n, nil // report the bytes; the next Read resumes
			}
			if err := d.backoff(err); err != nil {
				return 0, err
			}
			continue
		}
		return n, nil
	}
}

// Close drops the connection.
func (d *Download) Close() error {
	d.drop()
	return nil
}

// drop closes the current response and stops its watchdog.
func (d *Download) drop() {
	if d.body != nil {
		d.body.Close()
		d.body = nil
	}
	if d.stopDog != nil {
		close(d.stopDog)
		d.stopDog = nil
	}
}

// watch closes body when a Read has waited on it for Retry.Idle (a slow
// consumer that does not call Read is not a silent server): the blocked
// Read then fails and the download resumes on a new connection.
func (d *Download) watch(body io.Closer) {
	if d.Retry.Idle <= 0 {
		return
	}
	stop := make(chan struct{})
	d.stopDog = stop
	go func() {
		t := time.NewTicker(d.Retry.Idle / 4)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				if w := d.waiting.Load(); w != 0 && now.Sub(time.Unix(0, w)) > d.Retry.Idle {
					body.Close()
					return
				}
			}
		}
	}()
}

func (d *Download) check() error {
	if d.digest == nil {
		return nil
	}
	if sum := d.h.Sum(nil); string(sum) != string(d.digest) {
		return fmt.Errorf("%s: %w: got sha-256 %x, server says %x", d.URL, ErrDigest, sum, d.digest)
	}
	return nil
}

// ErrDigest means the bytes read do not hash to the server's digest.
var ErrDigest = errors.New("digest mismatch")

// permanent is an answer that another attempt will not change.
type permanent struct{ error }

// busy is a 503: the server is over its budget and says when to return.
type busy struct{ after time.Duration }

func (b *busy) Error() string { return "server busy, retry after " + b.after.String() }

// open sends the request for the bytes from d.off on.
func (d *Download) open() error {
	req, err := http.NewRequestWithContext(d.ctx, http.MethodGet, d.URL, nil)
	if err != nil {
		return &permanent{err}
	}
	req.Header.Set("User-Agent", "wwstage1")
	if d.off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(d.off, 10)+"-")
		if d.etag != "" {
			req.Header.Set("If-Range", d.etag)
		}
	}
	resp, err := d.Client.Do(req)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			resp.Body.Close()
		}
	}()
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests:
		d.Waits++
		return &busy{after: retryAfter(resp.Header.Get("Retry-After"))}
	case resp.StatusCode >= 500:
		return fmt.Errorf("%s: %s", d.URL, resp.Status)
	case resp.StatusCode == http.StatusOK && d.off > 0:
		// If-Range did not match (or Range was ignored): a new file.
		return ErrChanged
	case resp.StatusCode == http.StatusPartialContent && d.off > 0:
		start, total, err := contentRange(resp.Header.Get("Content-Range"))
		if err != nil || start != d.off || (d.size >= 0 && total != d.size) {
			return ErrChanged
		}
		d.Resumes++
		d.Logf("download of %s resumed at byte %d of %d", d.URL, d.off, d.size)
	case resp.StatusCode == http.StatusOK:
		d.size = resp.ContentLength
		d.etag = resp.Header.Get("ETag")
		if sum, ok := parseDigest(resp.Header.Get(DigestHeader)); ok {
			d.digest = sum
		}
	default:
		return &permanent{fmt.Errorf("%s: %s", d.URL, resp.Status)}
	}
	ok = true
	d.body = resp.Body
	d.watch(resp.Body)
	return nil
}

// backoff waits before the next attempt: the server's Retry-After for a
// 503, else exponential backoff with full jitter.
func (d *Download) backoff(cause error) error {
	if time.Since(d.progress) > d.Retry.Stall {
		return fmt.Errorf("%s: no progress for %v, giving up: %w", d.URL, d.Retry.Stall, cause)
	}
	var wait time.Duration
	var b *busy
	if errors.As(cause, &b) {
		wait = min(b.after, d.Retry.MaxRetryAfter)
		// A little jitter on top, so nodes told the same second spread.
		wait += time.Duration(rand.Int64N(int64(wait/4) + 1))
		d.progress = time.Now() // the server is alive and pacing us
	} else {
		d.attempt++
		ceil := d.Retry.Base << min(d.attempt, 20)
		if ceil > d.Retry.Max || ceil <= 0 {
			ceil = d.Retry.Max
		}
		wait = time.Duration(rand.Int64N(int64(ceil) + 1))
		d.Logf("%v; retrying in %v", cause, wait.Round(time.Millisecond))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-d.ctx.Done():
		return d.ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryAfter reads Retry-After in seconds or as an HTTP date; 1 s when
// the server said nothing usable.
func retryAfter(v string) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return max(time.Duration(s)*time.Second, 100*time.Millisecond)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 100*time.Millisecond)
	}
	return time.Second
}

// contentRange reads "bytes START-END/TOTAL".
func contentRange(v string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, fmt.Errorf("content-range %q", v)
	}
	span, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, fmt.Errorf("content-range %q", v)
	}
	first, _, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, fmt.Errorf("content-range %q", v)
	}
	if start, err = strconv.ParseInt(first, 10, 64); err != nil {
		return 0, 0, err
	}
	if tot == "*" {
		return start, -1, nil
	}
	total, err = strconv.ParseInt(tot, 10, 64)
	return start, total, err
}
