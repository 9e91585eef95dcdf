package stage1

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/archive"
)

// benchImage is a zstd image shaped like a small OS image: many small
// compressible files (text, binaries) and a few large incompressible ones.
func benchImage(b *testing.B) []byte {
	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, archive.Zstd)
	if err != nil {
		b.Fatal(err)
	}
	src := rand.NewChaCha8([32]byte{7})
	r := rand.New(src)
	words := []string{"warewulf", "node", "kernel", "overlay", "provision", "cluster", "image", "systemd", "libc", "usr", "share", "doc"}
	for d := range 200 {
		dir := fmt.Sprintf("usr/share/d%03d", d)
		w.WriteHeader(&archive.Header{Name: dir, Mode: archive.TypeDir | 0o755})
		for f := range 100 { // 20,000 files of 1-16 KB, compressible
			var text bytes.Buffer
			n := 1024 + r.IntN(15*1024)
			for text.Len() < n {
				text.WriteString(words[r.IntN(len(words))])
				text.WriteByte(" \n"[r.IntN(2)])
			}
			w.WriteFile(&archive.Header{Name: fmt.Sprintf("%s/f%03d", dir, f), Mode: archive.TypeReg | 0o644}, text.Bytes())
		}
	}
	big := make([]byte, 8<<20)
	for i := range 24 { // 192 MB incompressible (firmware, compressed payloads)
		src.Read(big)
		w.WriteFile(&archive.Header{Name: fmt.Sprintf("opt/blob%02d", i), Mode: archive.TypeReg | 0o644}, big)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkFetchUnpack: the wwstage1 binary's fetch-and-unpack of an image
// against `curl | zstd -d | cpio -idm` on the same bytes from the same
// server, into a tmpfs (as on a node). They take turns; each reports its
// median round, and the ratio is the pipeline's median time over stage 1's
// (goal: at least 0.9). Stage 1 also checks the SHA-256 digest, which
// the pipeline does not.
func BenchmarkFetchUnpack(b *testing.B) {
	for _, c := range []string{"curl", "zstd", "cpio", "go"} {
		if _, err := exec.LookPath(c); err != nil {
			if os.Getenv("CI") == "true" {
				b.Fatalf("%s is not installed", c)
			}
			b.Skipf("%s is not installed", c)
		}
	}
	img := benchImage(b)
	sum := sha256.Sum256(img)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(DigestHeader, FormatDigest(sum[:]))
		http.ServeContent(w, r, "", time.Unix(1, 0), bytes.NewReader(img))
	}))
	defer srv.Close()
	bin := filepath.Join(b.TempDir(), "wwstage1")
	if out, err := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/warewulf-ng/warewulf/cmd/wwstage1").CombinedOutput(); err != nil {
		b.Fatalf("building wwstage1: %v\n%s", err, out)
	}
	shm := "/dev/shm"
	if _, err := os.Stat(shm); err != nil {
		shm = b.TempDir()
	}
	work, err := os.MkdirTemp(shm, "wwstage1-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(work)
	runs := map[string]func(dir string) *exec.Cmd{
		"stage1": func(dir string) *exec.Cmd { return exec.Command(bin, "fetch", srv.URL, dir) },
		"pipeline": func(dir string) *exec.Cmd {
			cmd := exec.Command("sh", "-c", "curl -sf "+srv.URL+" | zstd -dc | cpio -idm --quiet")
			cmd.Dir = dir
			return cmd
		},
	}
	times := map[string][]float64{}
	order := []string{"stage1", "pipeline"}
	for round := range 5 {
		if round%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, name := range order {
			dir := filepath.Join(work, name)
			os.RemoveAll(dir)
			os.MkdirAll(dir, 0o755)
			start := time.Now()
			if out, err := runs[name](dir).CombinedOutput(); err != nil {
				b.Fatalf("%s: %v\n%s", name, err, out)
			}
			times[name] = append(times[name], time.Since(start).Seconds())
			if _, err := os.Stat(filepath.Join(dir, "opt/blob23")); err != nil {
				b.Fatalf("%s did not unpack everything: %v", name, err)
			}
			os.RemoveAll(dir)
		}
	}
	med := func(v []float64) float64 { sort.Float64s(v); return v[len(v)/2] }
	s, p := med(times["stage1"]), med(times["pipeline"])
	b.ReportMetric(float64(len(img))/1e6, "image-MB")
	b.ReportMetric(s, "stage1-s")
	b.ReportMetric(p, "pipeline-s")
	b.ReportMetric(p/s, "stage1-vs-pipeline")
	b.ReportMetric(0, "ns/op")
}
