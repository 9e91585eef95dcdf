package node

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/gofrs/flock"

	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// Parse decodes and validates a nodes.conf document. An empty document is
// an empty database.
func Parse(data []byte) (*DB, error) {
	db, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := db.Validate(); err != nil {
		return nil, err
	}
	return db, nil
}

// Marshal renders the database as nodes.conf YAML.
func (db *DB) Marshal() ([]byte, error) {
	return encode(db)
}

// Load reads nodes.conf. A missing file is an empty database, so a fresh
// controller starts with `wwctl profile add`.
func Load(path string) (*DB, error) { return read(path, true) }

// read loads nodes.conf; Update validates once, after its change, instead.
func read(path string, validate bool) (*DB, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	db, err := decode(data)
	if err == nil && validate {
		err = db.Validate()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return db, nil
}

// Update is the one read-modify-write of nodes.conf: it holds an exclusive
// lock, loads the file, applies change, validates, and replaces the file
// atomically. If change or validation fails, the file is untouched.
func Update(path string, change func(*DB) error) error {
	lock := flock.New(path + ".lock")
	if err := lock.Lock(); err != nil {
		return fmt.Errorf("locking %s: %w", path, err)
	}
	defer lock.Unlock()

	db, err := read(path, false)
	if err != nil {
		return err
	}
	if err := change(db); err != nil {
		return err
	}
	return db.save(path)
}

func (db *DB) save(path string) error {
	if err := db.Validate(); err != nil {
		return err
	}
	data, err := db.Marshal()
	if err != nil {
		return err
	}
	// Asset keys and BMC passwords live here: 0640 whatever mode the file
	// had (an older tool or a hand copy may have left it 0644), or
	// stricter if it was.
	perm := fs.FileMode(0o640)
	if st, err := os.Stat(path); err == nil {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) && st.Mode().Perm()&^perm == 0 {
			return nil
		}
		perm &= st.Mode().Perm()
	}
	return safefile.WriteFile(path, data, perm)
}
