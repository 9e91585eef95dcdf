package archive

import (
	"bytes"
	"compress/gzip"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/warewulf-ng/warewulf/internal/testenv"
)

func writeSample(t *testing.T, c Compression) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.WriteHeader(&Header{Name: "etc", Mode: TypeDir | 0o755}))
	must(w.WriteFile(&Header{Name: "etc/hostname", Mode: TypeReg | 0o644, Mtime: 1700000000}, []byte("node1\n")))
	must(w.WriteFile(&Header{Name: "bin/sh", Mode: TypeLink | 0o777}, []byte("busybox")))
	must(w.WriteHeader(&Header{Name: "dev/console", Mode: TypeChar | 0o600, RdevMajor: 5, RdevMinor: 1}))
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, crosses buffers
	must(w.WriteHeader(&Header{Name: "big", Mode: TypeReg | 0o600, Size: int64(len(big))}))
	if _, err := w.ReadFrom(bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	must(w.Close())
	return buf.Bytes()
}

func TestRoundTripThroughGNUCpio(t *testing.T) {
	_, err := exec.LookPath("cpio")
	testenv.Need(t, "GNU cpio is not installed (test/deps.sh installs it)", err == nil)
	for _, c := range []Compression{None, Gzip, Zstd} {
		data := writeSample(t, c)
		var r io.Reader = bytes.NewReader(data)
		switch c {
		case Gzip:
			zr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		case Zstd:
			zr, err := zstd.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			defer zr.Close()
			r = zr
		}
		cmd := exec.Command("cpio", "-itv", "--quiet")
		cmd.Stdin = r
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: cpio: %v\n%s", c, err, out)
		}
		for _, want := range []string{"etc/hostname", "bin/sh -> busybox", "5,   1", "1048576"} {
			if !strings.Contains(string(out), want) {
				t.Fatalf("%q: listing lacks %q:\n%s", c, want, out)
			}
		}
		if !bytes.Equal(data, writeSample(t, c)) {
			t.Fatalf("%q: the same entries gave different bytes", c)
		}
	}
}

func TestBodySizeChecked(t *testing.T) {
	w := NewCpioWriter(io.Discard)
	if err := w.WriteHeader(&Header{Name: "f", Mode: TypeReg, Size: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("toolong")); err == nil {
		t.Fatal("a body longer than its size was accepted")
	}
	if err := w.WriteHeader(&Header{Name: "g", Mode: TypeReg}); err == nil {
		t.Fatal("a header before the previous body was complete was accepted")
	}
	if _, err := w.ReadFrom(strings.NewReader("ab")); err == nil {
		t.Fatal("a short body was accepted")
	}
}

func TestParseCompression(t *testing.T) {
	for in, want := range map[string]Compression{"gz": Gzip, "gzip": Gzip, "zstd": Zstd, "zst": Zstd, "": None, "none": None} {
		if got, err := ParseCompression(in); err != nil || got != want {
			t.Fatalf("%q: %q %v", in, got, err)
		}
	}
	if _, err := ParseCompression("lz4"); err == nil || !strings.Contains(err.Error(), `"lz4"`) {
		t.Fatalf("lz4: %v", err)
	}
	if Gzip.Suffix() != ".gz" || Zstd.Suffix() != ".zst" || None.Suffix() != "" {
		t.Fatal("suffixes")
	}
}

func TestFieldLimits(t *testing.T) {
	var buf bytes.Buffer
	w := NewCpioWriter(&buf)
	if err := w.WriteHeader(&Header{Name: "huge", Mode: TypeReg, Size: 1 << 32}); err == nil || !strings.Contains(err.Error(), "huge") {
		t.Fatalf("a 4 GiB file: %v", err)
	}
	if err := w.WriteHeader(&Header{Name: "old", Mode: TypeReg, Mtime: -5}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// mtime is the sixth field: after magic (6) and five 8-digit fields.
	if got := buf.String()[6+5*8 : 6+6*8]; got != "00000000" {
		t.Fatalf("mtime before 1970 written as %s", got)
	}
}

// TestBlockPadding: with Block set the archive ends padded to a multiple of
// it, as GNU cpio pads to 512-byte blocks, and Size is its whole length.
func TestBlockPadding(t *testing.T) {
	var buf bytes.Buffer
	w := NewCpioWriter(&buf)
	w.Block = 512
	if err := w.WriteFile(&Header{Name: "file", Mode: 0o100644, Nlink: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 512 || w.Size() != 512 {
		t.Fatalf("archive of one empty file: %d bytes, Size %d, want 512", buf.Len(), w.Size())
	}
	r := NewCpioReader(&buf)
	if h, err := r.Next(); err != nil || h.Name != "file" {
		t.Fatalf("the padded archive does not read back: %v", err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the trailer and its padding: %v, want EOF", err)
	}
}
