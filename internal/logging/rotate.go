package logging

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

// RotatingFile is an io.WriteCloser that appends to a file and, when the
// next write would take it past a size limit, renames it to path.1 (shifting
// path.1 to path.2 and so on, dropping the oldest) and starts a new file.
// Writes are never split, so a log line is never torn across two files.
// It is safe for concurrent use.
type RotatingFile struct {
	path     string
	maxBytes int64
	keep     int // rotated files kept

	mu   sync.Mutex
	f    *os.File
	size int64
}

// OpenRotating opens (appending to) path. maxBytes <= 0 disables rotation;
// keep is how many rotated files to keep (0 = none: the old file is removed).
func OpenRotating(path string, maxBytes int64, keep int) (*RotatingFile, error) {
	r := &RotatingFile{path: path, maxBytes: maxBytes, keep: keep}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *RotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("logging: open log file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("logging: stat log file: %w", err)
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Write appends p, rotating first if p would not fit.
func (r *RotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	var rotErr error
	if r.maxBytes > 0 && r.size > 0 && r.size+int64(len(p)) > r.maxBytes {
		rotErr = r.rotate()
		if r.f == nil {
			return 0, rotErr
		}
		if rotErr != nil {
			// Try again only after another maxBytes, so a directory that
			// refuses renames costs one error per file size, not per line.
			r.size = 0
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	if err == nil && rotErr != nil {
		// The line is written (to the old file); report why rotation failed
		// so it does not fail silently forever.
		err = rotErr
	}
	return n, err
}

func (r *RotatingFile) backup(i int) string {
	return r.path + "." + strconv.Itoa(i)
}

// rotate shifts the backups and reopens. If renaming fails the current file
// is reopened and kept growing: losing log lines is worse than a big file.
func (r *RotatingFile) rotate() error {
	if err := r.f.Close(); err != nil {
		r.f = nil
		if oerr := r.open(); oerr != nil {
			return errors.Join(err, oerr)
		}
		return fmt.Errorf("logging: close for rotation: %w", err)
	}
	r.f = nil
	var err error
	if r.keep == 0 {
		err = os.Remove(r.path)
	} else {
		err = removeIfExists(r.backup(r.keep))
		for i := r.keep - 1; i >= 1 && err == nil; i-- {
			err = renameIfExists(r.backup(i), r.backup(i+1))
		}
		if err == nil {
			err = os.Rename(r.path, r.backup(1))
		}
	}
	if oerr := r.open(); oerr != nil {
		return errors.Join(err, oerr)
	}
	if err != nil {
		return fmt.Errorf("logging: rotate %s: %w", r.path, err)
	}
	return nil
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func renameIfExists(from, to string) error {
	if err := os.Rename(from, to); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Close closes the file; later writes fail with os.ErrClosed.
func (r *RotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
