package image

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/warewulf-ng/warewulf/internal/archive"
)

// fullDisk takes room bytes, then fails as a full file system does.
type fullDisk struct{ n, room int }

func (d *fullDisk) Write(p []byte) (int, error) {
	if d.n+len(p) > d.room {
		return 0, syscall.ENOSPC
	}
	d.n += len(p)
	return len(p), nil
}

// A full disk while the image is written is named as such, not blamed on
// the file being read; a file that really shrank still is.
func TestCopyBodyNamesTheCause(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 4<<20)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	rootfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	copyTo := func(dst interface{ Write([]byte) (int, error) }, size int64) error {
		w, err := archive.NewWriter(dst, archive.None)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteHeader(&archive.Header{Name: "big", Mode: archive.TypeReg | 0o644, Size: size}); err != nil {
			t.Fatal(err)
		}
		return copyBody(context.Background(), w, rootfd, "big", size)
	}
	err = copyTo(&fullDisk{room: 1 << 20}, int64(len(data)))
	if err == nil || strings.Contains(err.Error(), "changed during the build") || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("full disk: %v", err)
	}
	err = copyTo(&fullDisk{room: 64 << 20}, int64(len(data))+100)
	if err == nil || !strings.Contains(err.Error(), "changed during the build") {
		t.Errorf("file shorter than its header: %v", err)
	}
}
