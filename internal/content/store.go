package content

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/drover-org/drover/api"
)

// MaxBlobSize bounds the size of one blob (1 TiB): a size beyond it in an
// archive or a record is taken for corrupt input rather than trusted.
const MaxBlobSize int64 = 1 << 40

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
}

// Store is a content store on disk. It is safe for concurrent use, and
// several processes may share its directory.
type Store struct {
	dir string
	// noSync skips fsync; only tests that write thousands of throwaway
	// blobs (the fuzz target) set it.
	noSync bool

	mu     sync.Mutex
	cond   *sync.Cond
	images map[string]ImageRecord // by name
	// holds counts imports and fetches in progress; GC runs only when
	// there are none, and new ones wait while it runs (collecting).
	holds      int
	collecting bool
}

// NewStore opens the store in dir, creating it if needed, and loads its
// image records.
func NewStore(dir string) (*Store, error) {
	s := &Store{dir: dir, images: map[string]ImageRecord{}}
	s.cond = sync.NewCond(&s.mu)
	for _, sub := range []string{"blobs", "ingest", "tmp", "images"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("content store: %w", err)
		}
	}
	if err := s.loadImages(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// checkDigest refuses digests that are malformed or of an algorithm this
// build cannot compute.
func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v: %w", d, err, api.ErrInvalid)
	}
	return nil
}

func checkBlob(d digest.Digest, size int64) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	if size < 0 || size > MaxBlobSize {
		return fmt.Errorf("blob %s: size %d out of range (0 to %d): %w", d, size, MaxBlobSize, api.ErrInvalid)
	}
	return nil
}

func (s *Store) blobPath(d digest.Digest) string {
	return filepath.Join(s.dir, "blobs", string(d.Algorithm()), d.Encoded())
}

func (s *Store) partialPath(d digest.Digest) string {
	return filepath.Join(s.dir, "ingest", string(d.Algorithm()), d.Encoded()+".partial")
}

// Has reports whether the blob is in the store. A malformed digest is not.
func (s *Store) Has(d digest.Digest) bool {
	if checkDigest(d) != nil {
		return false
	}
	_, err := os.Stat(s.blobPath(d))
	return err == nil
}

// Info describes a blob; a missing one gives an error wrapping
// api.ErrNotFound.
func (s *Store) Info(d digest.Digest) (BlobInfo, error) {
	if err := checkDigest(d); err != nil {
		return BlobInfo{}, err
	}
	fi, err := os.Stat(s.blobPath(d))
	if err != nil {
		return BlobInfo{}, notFound(d, err)
	}
	return BlobInfo{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func notFound(d digest.Digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s is not in the content store: %w", d, api.ErrNotFound)
	}
	return fmt.Errorf("blob %s: %w", d, err)
}

// Open opens a blob for reading and returns its size.
func (s *Store) Open(d digest.Digest) (io.ReadSeekCloser, int64, error) {
	if err := checkDigest(d); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return nil, 0, notFound(d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("blob %s: %w", d, err)
	}
	return f, fi.Size(), nil
}

// readBlob reads a blob of at most limit bytes into memory: only for JSON
// documents.
func (s *Store) readBlob(d digest.Digest, limit int64) ([]byte, error) {
	f, size, err := s.Open(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > limit {
		return nil, fmt.Errorf("blob %s: %d bytes, more than the %d a JSON document may have: %w", d, size, limit, api.ErrInvalid)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	return b, nil
}

// Put writes a blob of the given digest and size from r. The content is
// checked before it becomes visible: a wrong size or digest gives an error
// wrapping api.ErrInvalid and leaves nothing behind. A blob already present
// is checked: kept if intact (and r is not read), replaced from r if its
// file was damaged on disk, so loading an image again repairs it.
func (s *Store) Put(d digest.Digest, size int64, r io.Reader) error {
	if err := checkBlob(d, size); err != nil {
		return err
	}
	release := s.hold()
	defer release()
	if s.Has(d) && s.intact(d, size) {
		return nil
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "put-")
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	committing := false
	defer func() {
		if !committing {
			os.Remove(f.Name())
		}
	}()
	h := d.Algorithm().Hash()
	// One byte more than expected tells an over-long input from an exact one.
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, size+1))
	if err != nil {
		f.Close()
		return fmt.Errorf("writing blob %s: %w", d, err)
	}
	if n != size {
		f.Close()
		if n > size {
			return fmt.Errorf("blob %s: content is longer than its size %d: %w", d, size, api.ErrInvalid)
		}
		return fmt.Errorf("blob %s: content has %d bytes, want %d: %w", d, n, size, api.ErrInvalid)
	}
	if actual := digest.NewDigest(d.Algorithm(), h); actual != d {
		f.Close()
		return mismatch(d, actual)
	}
	committing = true
	return s.commit(f, s.blobPath(d))
}

// intact reports whether the blob's file has its size and digest.
func (s *Store) intact(d digest.Digest, size int64) bool {
	f, n, err := s.Open(d)
	if err != nil {
		return false
	}
	defer f.Close()
	if n != size {
		return false
	}
	h := d.Algorithm().Hash()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return digest.NewDigest(d.Algorithm(), h) == d
}

func mismatch(want, actual digest.Digest) error {
	return fmt.Errorf("blob %s: content has digest %s instead: %w", want, actual, api.ErrInvalid)
}

// ingest writes a blob whose digest is not known beforehand (a member of a
// docker-save archive) and returns its digest and size. r must end at the
// blob's end; more than limit bytes is an error.
func (s *Store) ingest(r io.Reader, limit int64) (digest.Digest, int64, error) {
	release := s.hold()
	defer release()
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "ingest-")
	if err != nil {
		return "", 0, err
	}
	committing := false
	defer func() {
		if !committing {
			os.Remove(f.Name())
		}
	}()
	dg := digest.Canonical.Digester()
	n, err := io.Copy(io.MultiWriter(f, dg.Hash()), io.LimitReader(r, limit+1))
	if err != nil {
		f.Close()
		return "", 0, err
	}
	if n > limit {
		f.Close()
		return "", 0, fmt.Errorf("blob longer than %d bytes: %w", limit, api.ErrInvalid)
	}
	d := dg.Digest()
	if s.Has(d) {
		f.Close()
		return d, n, nil
	}
	committing = true
	return d, n, s.commit(f, s.blobPath(d))
}

// commit makes a fully written temporary file the file at path: synced,
// then renamed (atomic on one file system), then the directory synced so
// that the rename itself survives a crash. It closes f, and removes it if
// it fails before the rename.
func (s *Store) commit(f *os.File, path string) error {
	var err error
	if !s.noSync {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	moved := false
	if err == nil {
		moved, err = s.rename(f.Name(), path)
	}
	if !moved {
		os.Remove(f.Name())
	}
	return err
}

// rename moves a file into place and syncs the directory; moved says
// whether the file left from, even if the sync then failed.
func (s *Store) rename(from, to string) (moved bool, err error) {
	dir := filepath.Dir(to)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	if err := os.Rename(from, to); err != nil {
		return false, err
	}
	return true, s.syncDir(dir)
}

func (s *Store) syncDir(dir string) error {
	if s.noSync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writeFileAtomic replaces path with data: readers see the old or the new
// content, never a mix.
func (s *Store) writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "file-")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	return s.commit(f, path)
}

// Delete removes a blob. A blob that an image record names is refused
// (api.ErrConflict): delete the image first. A missing blob gives an error
// wrapping api.ErrNotFound.
func (s *Store) Delete(d digest.Digest) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rec := range s.images {
		for _, b := range rec.Blobs() {
			if b.Digest == d {
				return fmt.Errorf("blob %s is part of image %s: delete the image first: %w", d, rec.Name, api.ErrConflict)
			}
		}
	}
	if err := os.Remove(s.blobPath(d)); err != nil {
		return notFound(d, err)
	}
	return nil
}

// Walk calls fn for every blob, in no particular order, and stops at the
// first error fn returns.
func (s *Store) Walk(fn func(BlobInfo) error) error {
	root := filepath.Join(s.dir, "blobs")
	algs, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("content store: %w", err)
	}
	for _, alg := range algs {
		if !alg.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(root, alg.Name()))
		if err != nil {
			return fmt.Errorf("content store: %w", err)
		}
		for _, e := range entries {
			d := digest.NewDigestFromEncoded(digest.Algorithm(alg.Name()), e.Name())
			if !e.Type().IsRegular() || d.Validate() != nil {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if err != nil {
				return fmt.Errorf("content store: %w", err)
			}
			if err := fn(BlobInfo{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// List returns every blob, sorted by digest.
func (s *Store) List() ([]BlobInfo, error) {
	var out []BlobInfo
	err := s.Walk(func(b BlobInfo) error {
		out = append(out, b)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, err
}
