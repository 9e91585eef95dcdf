// Package safefile writes files so that a reader, or a crash, only ever sees
// the old content or the new one: write a temporary file in the same
// directory, fsync it, rename it over the target, fsync the directory.
package safefile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is a pending replacement of a path. Write to it, then Commit; Abort
// (or a crash) leaves the target untouched.
type File struct {
	*os.File
	target string
	done   bool
}

// Create opens a temporary file beside path, creating parent directories.
func Create(path string, perm os.FileMode) (*File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &File{File: f, target: path}, nil
}

// Commit flushes the file to disk and renames it into place.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("safefile: %s already committed or aborted", f.target)
	}
	f.done = true
	tmp := f.Name()
	if err := f.Sync(); err != nil {
		f.File.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.File.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, f.target); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(f.target))
}

// Abort discards the temporary file. It is safe to call after Commit, so
// `defer f.Abort()` is the usual pattern.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.Name())
}

// WriteFile replaces path with data atomically.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteFrom(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFrom replaces path with what fill writes; on any error the target is
// left as it was.
func WriteFrom(path string, perm os.FileMode, fill func(io.Writer) error) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := fill(f); err != nil {
		return err
	}
	return f.Commit()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
