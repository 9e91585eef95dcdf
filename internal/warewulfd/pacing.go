package warewulfd

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/stage1"
)

// Pacing holds image downloads to the budget of warewulf.conf's `pacing:`
// section. In a boot storm every node asks for its image at once; served
// all together, each gets a sliver of the link, slow clients time out and
// the whole storm takes longer than serving them a batch at a time. Over
// the budget a request gets 503 with Retry-After (stage 1 waits that long,
// plus jitter, and asks again, resuming with Range what it already has).
//
// The budget is a number of transfers at once, a bandwidth, or both. A
// bandwidth admits only as many transfers as can each get fairShare, so
// each admitted transfer moves along briskly, and its transfers
// together are held to the bandwidth by a token bucket, in chunks that
// still leave through sendfile.
type pacer struct {
	max    atomic.Int64 // transfers admitted at once (0: no limit)
	bucket atomic.Pointer[bucket]
	active atomic.Int64
	// avgNanos is a moving average of how long an admitted transfer took,
	// from which Retry-After is drawn.
	avgNanos atomic.Int64
	refused  atomic.Int64
	conf     atomic.Pointer[string] // the settings applied, to notice a reload
}

// fairShare is the least rate each admitted transfer is given under a
// bandwidth budget (2 MiB/s).
const fairShare = 2 << 20

// paceChunk is how much of a paced transfer leaves per sendfile call.
const paceChunk = 256 << 10

// configure applies a (re)loaded pacing section.
func (p *pacer) configure(c config.PacingConf) {
	limit := int64(c.ImageDownloads)
	bw := c.Bandwidth()
	if bw > 0 {
		byBW := max(1, bw/fairShare)
		if limit == 0 || byBW < limit {
			limit = byBW
		}
		if b := p.bucket.Load(); b == nil || b.rate != bw {
			p.bucket.Store(newBucket(bw))
		}
	} else {
		p.bucket.Store(nil)
	}
	p.max.Store(limit)
}

// paced reports whether requests of stage count against the budget: the
// image (and the dracut initramfs, which carries one), the big transfers
// of a storm.
func paced(stage Stage) bool { return stage == StageImage || stage == StageInitramfs }

// admit takes a slot for a transfer. It returns the release function, or
// ok=false and how long the client should wait.
func (p *pacer) admit() (release func(), retry time.Duration, ok bool) {
	limit := p.max.Load()
	if limit == 0 && p.bucket.Load() == nil {
		return func() {}, 0, true
	}
	if n := p.active.Add(1); limit > 0 && n > limit {
		p.active.Add(-1)
		p.refused.Add(1)
		return nil, p.retryAfter(limit), false
	}
	start := time.Now()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.active.Add(-1)
			d := int64(time.Since(start))
			old := p.avgNanos.Load()
			if old == 0 {
				p.avgNanos.Store(d)
			} else {
				p.avgNanos.Store(old + (d-old)/8)
			}
		})
	}, 0, true
}

// retryAfter spreads refused clients over about one transfer time: a slot
// frees every avg/limit on average, so a random wait up to avg brings
// them back at about the rate slots free.
func (p *pacer) retryAfter(limit int64) time.Duration {
	avg := time.Duration(p.avgNanos.Load())
	if avg < time.Second {
		avg = time.Second
	}
	return min(time.Second+time.Duration(rand.Int64N(int64(avg))), time.Minute)
}

// refuse answers a request over the budget.
func (q *request) refuse(retry time.Duration) {
	secs := int((retry + time.Second - 1) / time.Second)
	q.w.Header().Set("Retry-After", strconv.Itoa(secs))
	q.fail(http.StatusServiceUnavailable, "over the image download budget (pacing), retry after "+strconv.Itoa(secs)+"s")
}

// bucket is a token bucket of bytes: at most rate a second on average,
// bursts of one second's worth.
type bucket struct {
	rate   int64
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newBucket(rate int64) *bucket {
	return &bucket{rate: rate, tokens: float64(rate), last: time.Now()}
}

// take waits until n bytes may be sent.
func (b *bucket) take(ctx context.Context, n int64) error {
	b.mu.Lock()
	now := time.Now()
	b.tokens = min(b.tokens+now.Sub(b.last).Seconds()*float64(b.rate), float64(b.rate))
	b.last = now
	b.tokens -= float64(n)
	wait := time.Duration(0)
	if b.tokens < 0 {
		wait = time.Duration(-b.tokens / float64(b.rate) * float64(time.Second))
	}
	b.mu.Unlock()
	if wait == 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// pacedWriter sends a file body through the token bucket, a chunk at a
// time, each chunk still by sendfile (an *io.LimitedReader over the
// *os.File, which is what the connection's ReadFrom recognizes).
type pacedWriter struct {
	*recorder
	b   *bucket
	ctx context.Context
}

func (w pacedWriter) ReadFrom(src io.Reader) (int64, error) {
	lr, ok := src.(*io.LimitedReader)
	if !ok {
		return w.recorder.ReadFrom(src)
	}
	var total int64
	for lr.N > 0 {
		k := min(lr.N, paceChunk)
		if err := w.b.take(w.ctx, k); err != nil {
			return total, err
		}
		// recorder.ReadFrom sends an *os.File or *multiFile chunk with
		// sendfile, as it would the whole body.
		n, err := w.recorder.ReadFrom(&io.LimitedReader{R: lr.R, N: k})
		lr.N -= n
		total += n
		if err != nil {
			return total, err
		}
		if n < k {
			return total, io.ErrUnexpectedEOF
		}
	}
	return total, nil
}

// paceAndDigest admits a big transfer under the pacing budget (false: it
// was refused with 503 and Retry-After) and sets its digest header.
func (s *Server) paceAndDigest(st *state, q *request, body *content) bool {
	admitted := q.release != nil
	if !admitted {
		q.release = func() {}
	}
	if !admitted && paced(q.stage) && q.r.Method != http.MethodHead {
		s.pacer.sync(st.cfg.Pacing)
		release, retry, ok := s.pacer.admit()
		if !ok {
			q.refuse(retry)
			return false
		}
		q.release, q.paced = release, s.pacer.bucket.Load()
	}
	if d, err := s.digests.get(body.paths); err == nil {
		q.w.Header().Set(stage1.DigestHeader, d)
	} else {
		s.log.Warnf("warewulfd: no digest for %s: %v", strings.Join(body.paths, " "), err)
	}
	return true
}

// sync applies the pacing section when it changed (a reload).
func (p *pacer) sync(c config.PacingConf) {
	key := strconv.Itoa(c.ImageDownloads) + "/" + c.ImageBandwidth
	if old := p.conf.Load(); old != nil && *old == key {
		return
	}
	p.configure(c)
	p.conf.Store(&key)
}
