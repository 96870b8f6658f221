package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-org/drover/api"
)

// Defaults of WriterOptions.
const (
	DefaultMaxSize  = 10 << 20
	DefaultMaxFiles = 3
)

// WriterOptions bound the disk space a container's output takes.
type WriterOptions struct {
	// MaxSize is the size in bytes at which the current file is rotated;
	// 0 means DefaultMaxSize. A file exceeds it only when it holds a single
	// entry larger than MaxSize.
	MaxSize int64
	// MaxFiles is the number of files kept, the current one included;
	// 0 means DefaultMaxFiles. With 1 the file is emptied when it is full.
	MaxFiles int
}

// Writer appends entries to a log file, rotating it by size. It is safe for
// concurrent use, so stdout and stderr can be copied into one Writer at once.
type Writer struct {
	path string
	opts WriterOptions

	mu     sync.Mutex
	f      *os.File // nil after a failed rotation; reopened on the next Write
	size   int64
	closed bool
}

// NewWriter opens path for appending, creating it and its directory if
// needed. Rotated files beyond opts.MaxFiles, left by a writer that kept more,
// are removed.
func NewWriter(path string, opts WriterOptions) (*Writer, error) {
	if opts.MaxSize < 0 || opts.MaxFiles < 0 {
		return nil, fmt.Errorf("log writer %s: negative MaxSize or MaxFiles: %w", path, api.ErrInvalid)
	}
	if opts.MaxSize == 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.MaxFiles == 0 {
		opts.MaxFiles = DefaultMaxFiles
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log writer: %w", err)
	}
	w := &Writer{path: path, opts: opts}
	if err := w.open(); err != nil {
		return nil, err
	}
	for n, name := range rotatedNames(path) {
		if n >= opts.MaxFiles {
			_ = os.Remove(name)
		}
	}
	return w, nil
}

// open opens (or creates) the current file. Called with mu held or before w
// is shared.
func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("log writer: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log writer: %w", err)
	}
	size := st.Size()
	if size > 0 {
		// A logger that crashed mid-write may have left half an entry. End it,
		// so that readers skip just that and our first entry stays whole.
		last := make([]byte, 1)
		if r, err := os.Open(w.path); err == nil {
			_, err = r.ReadAt(last, size-1)
			r.Close()
			if err == nil && last[0] != '\n' {
				if _, err := f.Write([]byte{'\n'}); err != nil {
					f.Close()
					return fmt.Errorf("log writer: %w", err)
				}
				size++
			}
		}
	}
	w.f, w.size = f, size
	return nil
}

// Write appends one entry. A trailing newline in line is dropped; any other
// newline is kept, escaped, inside the entry.
func (w *Writer) Write(stream string, line []byte, t time.Time) error {
	if stream != Stdout && stream != Stderr {
		return fmt.Errorf("log writer: stream %q is neither stdout nor stderr: %w", stream, api.ErrInvalid)
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	var buf bytes.Buffer
	if err := encodeEntry(&buf, stream, line, t); err != nil {
		return fmt.Errorf("log writer: %w", err)
	}
	b := buf.Bytes()

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("log writer %s: %w", w.path, os.ErrClosed)
	}
	if w.f != nil && w.size > 0 && w.size+int64(len(b)) > w.opts.MaxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	if w.f == nil {
		if err := w.open(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("log writer: %w", err)
	}
	return nil
}

// rotate closes the current file, shifts PATH.i to PATH.i+1 from the oldest
// down (the rename onto PATH.MaxFiles-1 drops the oldest) and opens a new
// PATH. Renaming from the oldest down keeps every snapshot of the names in
// write order, which Read depends on. Called with mu held.
func (w *Writer) rotate() error {
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("log writer: closing %s for rotation: %w", w.path, err)
	}
	if w.opts.MaxFiles == 1 {
		if err := os.Remove(w.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("log writer: %w", err)
		}
	}
	for i := w.opts.MaxFiles - 1; i >= 1; i-- {
		err := os.Rename(fileName(w.path, i-1), fileName(w.path, i))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("log writer: rotating: %w", err)
		}
	}
	return w.open()
}

// Close closes the current file. Writes after Close fail.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// fileName is PATH for n == 0 and PATH.n for rotated files.
func fileName(path string, n int) string {
	if n == 0 {
		return path
	}
	return path + "." + strconv.Itoa(n)
}

// rotatedNames maps the numbers of the rotated files that exist to their
// names. Names with other suffixes (PATH.tmp, PATH.01) are not ours.
func rotatedNames(path string) map[int]string {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	out := map[int]string{}
	for {
		names, err := d.Readdirnames(256)
		for _, name := range names {
			suffix, ok := strings.CutPrefix(name, base+".")
			if !ok || suffix == "" || suffix[0] == '0' || suffix[0] == '+' {
				continue
			}
			n, err := strconv.Atoi(suffix)
			if err != nil || n <= 0 {
				continue
			}
			out[n] = filepath.Join(dir, name)
		}
		if err == io.EOF || len(names) == 0 {
			return out
		}
		if err != nil {
			return out
		}
	}
}
