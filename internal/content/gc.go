package content

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/drover-org/drover/api"
)

// Ages after which GC removes leftovers: a partial file is kept a day for a
// fetch to resume; a temporary file is only ever in use while being
// written, which refreshes its modification time.
const (
	partialTTL = 24 * time.Hour
	tmpTTL     = time.Hour
)

// ErrBusy says GC did not run because an import or fetch is in progress.
var ErrBusy = fmt.Errorf("content store is busy with an import or fetch: %w", api.ErrUnavailable)

// hold keeps GC away until release is called. Writes of blobs hold the
// store from their first blob until their image record is in, so GC never
// takes a blob that a record is about to name. Holds nest: one is only
// delayed by a GC that is already running, which cannot start while
// another hold exists.
func (s *Store) hold() (release func()) {
	s.mu.Lock()
	for s.collecting {
		s.cond.Wait()
	}
	s.holds++
	s.mu.Unlock()
	var done bool
	return func() {
		s.mu.Lock()
		if !done {
			done = true
			s.holds--
			s.cond.Broadcast()
		}
		s.mu.Unlock()
	}
}

// GCResult says what GC removed.
type GCResult struct {
	Blobs    int   // blobs no image record names
	Bytes    int64 // their total size
	Partials int   // partial and temporary files left by broken writes
}

// GC removes the blobs that no image record names, partial files of writes
// not resumed for a day and stale temporary files. It does not wait: while
// an import or fetch is in progress it returns ErrBusy.
func (s *Store) GC(ctx context.Context) (GCResult, error) {
	s.mu.Lock()
	if s.holds > 0 || s.collecting {
		s.mu.Unlock()
		return GCResult{}, ErrBusy
	}
	s.collecting = true
	keep := map[digest.Digest]bool{}
	for _, rec := range s.images {
		for _, b := range rec.Blobs() {
			keep[b.Digest] = true
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.collecting = false
		s.cond.Broadcast()
		s.mu.Unlock()
	}()

	var res GCResult
	var errs []error
	err := s.Walk(func(b BlobInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if keep[b.Digest] {
			return nil
		}
		if err := os.Remove(s.blobPath(b.Digest)); err != nil {
			errs = append(errs, err)
			return nil
		}
		res.Blobs++
		res.Bytes += b.Size
		return nil
	})
	errs = append(errs, err)
	now := time.Now()
	errs = append(errs, s.removeStale(filepath.Join(s.dir, "ingest"), now.Add(-partialTTL), &res))
	errs = append(errs, s.removeStale(filepath.Join(s.dir, "tmp"), now.Add(-tmpTTL), &res))
	return res, errors.Join(errs...)
}

// removeStale removes files under dir older than before that no Writer
// holds locked (a Writer of another process may hold one).
func (s *Store) removeStale(dir string, before time.Time, res *GCResult) error {
	return filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if err != nil || fi.ModTime().After(before) {
			return nil
		}
		if strings.HasSuffix(p, ".partial") {
			f, err := os.Open(p)
			if err != nil {
				return nil
			}
			defer f.Close()
			if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
				return nil
			}
		}
		if os.Remove(p) == nil {
			res.Partials++
		}
		return nil
	})
}
