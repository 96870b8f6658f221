package content

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/drover-org/drover/api"
)

// ErrExists says a blob is already in the store, so there is nothing to
// write. It matches api.ErrConflict too.
var ErrExists = fmt.Errorf("blob already in the content store: %w", api.ErrConflict)

// errLocked: another Writer, in this process or another, has the blob.
var errLocked = errors.New("blob is being written")

// Writer writes one blob of a known digest and size, resumably: the bytes
// written so far stay in a partial file across Close and process restarts,
// and the next Writer of the digest continues at Offset. Only one Writer of
// a digest exists at a time (a lock on the partial file, which also holds
// between processes).
type Writer struct {
	st      *Store
	d       digest.Digest
	size    int64
	f       *os.File
	h       hash.Hash
	off     int64
	release func()
	done    bool
}

// Writer returns a Writer for the blob. If another Writer has it, Writer
// waits until that one ends or ctx is done. A blob already present gives
// an error wrapping ErrExists.
func (s *Store) Writer(ctx context.Context, d digest.Digest, size int64) (*Writer, error) {
	if err := checkBlob(d, size); err != nil {
		return nil, err
	}
	wait := 10 * time.Millisecond
	for {
		if s.Has(d) {
			return nil, fmt.Errorf("blob %s: %w", d, ErrExists)
		}
		w, err := s.tryWriter(d, size)
		if !errors.Is(err, errLocked) {
			return w, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("blob %s: waiting for another writer of it: %w", d, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

func (s *Store) tryWriter(d digest.Digest, size int64) (_ *Writer, err error) {
	p := s.partialPath(d)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	release := s.hold()
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		release()
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			release()
		}
	}()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("blob %s: locking %s: %w", d, p, err)
	}
	// Between our open and our lock, the previous holder may have
	// committed or discarded the file: then we locked a file that is no
	// longer the partial, and must start over.
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if cur, err := os.Stat(p); err != nil || !os.SameFile(fi, cur) {
		return nil, errLocked
	}
	if s.Has(d) {
		os.Remove(p)
		return nil, fmt.Errorf("blob %s: %w", d, ErrExists)
	}
	w := &Writer{st: s, d: d, size: size, f: f, h: d.Algorithm().Hash(), off: fi.Size(), release: release}
	// The hash state is not saved, so resuming re-reads what is there.
	// That costs a read of the partial, not a transfer.
	if w.off > size {
		w.off = 0
	}
	if w.off > 0 {
		if n, err := io.Copy(w.h, io.NewSectionReader(f, 0, w.off)); err != nil || n != w.off {
			w.off = 0
		}
	}
	if w.off == 0 {
		w.h.Reset()
		if err := f.Truncate(0); err != nil {
			return nil, fmt.Errorf("blob %s: %w", d, err)
		}
	}
	if _, err := f.Seek(w.off, io.SeekStart); err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	return w, nil
}

// Digest is the blob's expected digest.
func (w *Writer) Digest() digest.Digest { return w.d }

// Size is the blob's expected size.
func (w *Writer) Size() int64 { return w.size }

// Offset is how many bytes are written so far, including those of earlier
// Writers of the same blob.
func (w *Writer) Offset() int64 { return w.off }

// Write appends to the blob. Bytes beyond its size are refused with an
// error wrapping api.ErrInvalid, and nothing of p is written then.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("blob %s: write after the writer ended", w.d)
	}
	if int64(len(p)) > w.size-w.off {
		return 0, fmt.Errorf("blob %s: content is longer than its size %d: %w", w.d, w.size, api.ErrInvalid)
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.off += int64(n)
	if err != nil {
		return n, fmt.Errorf("blob %s: %w", w.d, err)
	}
	return n, nil
}

// Reset drops what was written, to start over at offset 0.
func (w *Writer) Reset() error {
	if w.done {
		return fmt.Errorf("blob %s: reset after the writer ended", w.d)
	}
	if err := w.f.Truncate(0); err != nil {
		return fmt.Errorf("blob %s: %w", w.d, err)
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("blob %s: %w", w.d, err)
	}
	w.h.Reset()
	w.off = 0
	return nil
}

// Commit checks the blob and makes it visible in the store. An incomplete
// blob gives an error and keeps the partial file for later. A digest
// mismatch gives an error wrapping api.ErrInvalid that names both digests,
// and removes the partial file: bad bytes are never resumed from. The
// Writer ends either way.
func (w *Writer) Commit() error {
	if w.done {
		return fmt.Errorf("blob %s: commit after the writer ended", w.d)
	}
	if w.off != w.size {
		w.Close()
		return fmt.Errorf("blob %s: incomplete, %d of %d bytes written", w.d, w.off, w.size)
	}
	if actual := digest.NewDigest(w.d.Algorithm(), w.h); actual != w.d {
		w.Discard()
		return mismatch(w.d, actual)
	}
	w.done = true
	defer w.release()
	// Renamed before the file is closed: the lock stays held until then,
	// so no other Writer can take up the file we are committing (one that
	// opened it meanwhile sees it is no longer the partial).
	var err error
	if !w.st.noSync {
		err = w.f.Sync()
	}
	if err == nil {
		// A partial that could not be moved stays, complete and verified,
		// for the next Writer to commit.
		_, err = w.st.rename(w.st.partialPath(w.d), w.st.blobPath(w.d))
	}
	err = errors.Join(err, w.f.Close())
	if err != nil {
		return fmt.Errorf("committing blob %s: %w", w.d, err)
	}
	return nil
}

// Close ends the Writer and keeps what was written for a later Writer of
// the same blob. Closing an ended Writer does nothing.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	defer w.release()
	var err error
	if !w.st.noSync {
		err = w.f.Sync()
	}
	return errors.Join(err, w.f.Close())
}

// Discard ends the Writer and removes what was written.
func (w *Writer) Discard() error {
	if w.done {
		return nil
	}
	w.done = true
	defer w.release()
	// Removed while still locked, so no other Writer resumes from it.
	err := os.Remove(w.st.partialPath(w.d))
	return errors.Join(err, w.f.Close())
}
