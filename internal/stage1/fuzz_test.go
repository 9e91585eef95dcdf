package stage1

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/archive"
)

// FuzzUnpack: whatever bytes arrive as an image, Unpack returns (an error
// or not) without panicking, and writes nothing outside its root.
func FuzzUnpack(f *testing.F) {
	for _, c := range []archive.Compression{archive.None, archive.Gzip, archive.Zstd} {
		var buf bytes.Buffer
		w, _ := archive.NewWriter(&buf, c)
		w.WriteHeader(&archive.Header{Name: "d", Mode: archive.TypeDir | 0o755})
		w.WriteFile(&archive.Header{Name: "d/f", Mode: archive.TypeReg | 0o644}, []byte("data"))
		w.WriteFile(&archive.Header{Name: "l", Mode: archive.TypeLink | 0o777}, []byte("d/f"))
		w.Close()
		f.Add(buf.Bytes())
	}
	f.Add([]byte("070701garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		root := filepath.Join(dir, "root")
		os.Mkdir(root, 0o755)
		Unpack(bytes.NewReader(data), root)
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Fatalf("wrote outside the root: %v", ents)
		}
	})
}
