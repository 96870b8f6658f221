package content

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/drover-org/drover/api"
)

// randomBytes gives n reproducible bytes.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func putT(t *testing.T, st *Store, b []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	if err := st.Put(d, int64(len(b)), bytes.NewReader(b)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	return d
}

func readAllBlob(t *testing.T, st *Store, d digest.Digest) []byte {
	t.Helper()
	f, size, err := st.Open(d)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != size {
		t.Errorf("Open said %d bytes, read %d", size, len(b))
	}
	return b
}

func TestPutOpenDelete(t *testing.T) {
	st := newStore(t)
	data := randomBytes(100_000, 1)
	d := putT(t, st, data)
	if !st.Has(d) {
		t.Fatal("Has = false after Put")
	}
	if got := readAllBlob(t, st, d); !bytes.Equal(got, data) {
		t.Fatal("read back different bytes")
	}
	f, _, err := st.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(99_990, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tail, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(tail, data[99_990:]) {
		t.Error("Seek then read gave other bytes")
	}
	// Putting it again reads nothing and changes nothing.
	if err := st.Put(d, int64(len(data)), iotestErrReader{}); err != nil {
		t.Errorf("second Put: %v", err)
	}
	info, err := st.Info(d)
	if err != nil || info.Size != int64(len(data)) {
		t.Errorf("Info = %+v, %v", info, err)
	}
	d2 := putT(t, st, []byte("second"))
	list, err := st.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := st.Delete(d); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if st.Has(d) || !st.Has(d2) {
		t.Error("Delete removed the wrong blob")
	}
	if err := st.Delete(d); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Delete of a missing blob: %v, want ErrNotFound", err)
	}
	if _, _, err := st.Open(d); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), d.String()) {
		t.Errorf("Open of a missing blob: %v, want ErrNotFound naming it", err)
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("must not be read") }

func TestPutVerifies(t *testing.T) {
	st := newStore(t)
	data := []byte("the right content")
	d := digest.FromBytes(data)
	for _, tc := range []struct {
		name    string
		d       digest.Digest
		size    int64
		content []byte
		want    []string
	}{
		{"Digest", d, int64(len(data)), []byte("the wrong content"), []string{d.String(), digest.FromString("the wrong content").String()}},
		{"Short", d, int64(len(data)), data[:5], []string{"5 bytes"}},
		{"Long", d, int64(len(data)) - 1, data, []string{"longer"}},
		{"BadDigest", "sha256:1234", 1, []byte("x"), []string{"sha256:1234"}},
		{"UnknownAlgorithm", "md5:d41d8cd98f00b204e9800998ecf8427e", 0, nil, []string{"md5"}},
		{"NegativeSize", d, -1, nil, []string{"out of range"}},
		{"HugeSize", d, MaxBlobSize + 1, nil, []string{"out of range"}},
	} {
		err := st.Put(tc.d, tc.size, bytes.NewReader(tc.content))
		if !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", tc.name, err, w)
			}
		}
	}
	if st.Has(d) {
		t.Error("a refused Put left the blob")
	}
	if entries, _ := os.ReadDir(filepath.Join(st.Dir(), "tmp")); len(entries) != 0 {
		t.Errorf("refused Puts left %d temporary files", len(entries))
	}
}

// TestPutConcurrent races good and bad writers of one digest: the good
// content wins, the bad is refused, and nothing is torn.
func TestPutConcurrent(t *testing.T) {
	st := newStore(t)
	good := randomBytes(1<<20, 2)
	bad := randomBytes(1<<20, 3)
	d := digest.FromBytes(good)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			content := good
			if i%2 == 1 {
				content = bad
			}
			// A bad writer is refused, or not even read once the good
			// content is in.
			err := st.Put(d, int64(len(content)), bytes.NewReader(content))
			if err != nil && (i%2 == 0 || !errors.Is(err, api.ErrInvalid)) {
				t.Errorf("writer %d: %v", i, err)
			}
		})
		wg.Go(func() {
			if f, _, err := st.Open(d); err == nil {
				got, _ := digest.Canonical.FromReader(f)
				f.Close()
				if got != d {
					t.Errorf("a reader saw a torn blob: %s", got)
				}
			}
		})
	}
	wg.Wait()
	if !bytes.Equal(readAllBlob(t, st, d), good) {
		t.Fatal("stored content is not the good one")
	}
}

func TestWriterResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	data := randomBytes(300_000, 4)
	d := digest.FromBytes(data)
	ctx := context.Background()

	st, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := st.Writer(ctx, d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:123_456]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// A new Store on the same directory: as after a restart.
	st, err = NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err = st.Writer(ctx, d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 123_456 {
		t.Fatalf("resumed at %d, want 123456", w.Offset())
	}
	if _, err := w.Write(data[w.Offset():]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if !bytes.Equal(readAllBlob(t, st, d), data) {
		t.Error("committed blob differs")
	}
	if _, err := os.Stat(st.partialPath(d)); !os.IsNotExist(err) {
		t.Errorf("partial file left after Commit: %v", err)
	}
	if _, err := st.Writer(ctx, d, int64(len(data))); !errors.Is(err, ErrExists) {
		t.Errorf("Writer of a stored blob: %v, want ErrExists", err)
	}
}

func TestWriterRefusesBadContent(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	data := []byte("0123456789")
	d := digest.FromBytes(data)

	w, err := st.Writer(ctx, d, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("01234567890")); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("writing past the size: %v, want ErrInvalid", err)
	}
	if _, err := w.Write(data[:4]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err == nil || errors.Is(err, api.ErrInvalid) {
		t.Errorf("Commit of an incomplete blob: %v, want a plain error", err)
	}
	// The incomplete part stays for the next Writer.
	w, err = st.Writer(ctx, d, 10)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 4 {
		t.Fatalf("offset %d, want 4", w.Offset())
	}
	if _, err := w.Write([]byte("XXXXXX")); err != nil {
		t.Fatal(err)
	}
	err = w.Commit()
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), d.String()) || !strings.Contains(err.Error(), digest.FromString("0123XXXXXX").String()) {
		t.Errorf("Commit of corrupt content: %v, want ErrInvalid naming both digests", err)
	}
	if st.Has(d) {
		t.Error("corrupt content was committed")
	}
	if _, err := os.Stat(st.partialPath(d)); !os.IsNotExist(err) {
		t.Error("corrupt partial file kept")
	}
	w, err = st.Writer(ctx, d, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Discard()
	if w.Offset() != 0 {
		t.Errorf("after a corrupt commit the next Writer starts at %d, want 0", w.Offset())
	}
}

// TestWriterExclusive: a second Writer of a digest waits for the first,
// and finds the blob there once the first commits.
func TestWriterExclusive(t *testing.T) {
	st := newStore(t)
	data := randomBytes(1000, 5)
	d := digest.FromBytes(data)
	w1, err := st.Writer(context.Background(), d, 1000)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := st.Writer(ctx, d, 1000); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Writer while the first is open: %v, want to wait until the deadline", err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := st.Writer(context.Background(), d, 1000)
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	w1.Write(data)
	if err := w1.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, ErrExists) {
			t.Errorf("waiting Writer: %v, want ErrExists", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiting Writer never returned")
	}
}

// TestWritersRace has many writers of one blob, each writing a piece and
// closing: together they finish it, and the result is intact.
func TestWritersRace(t *testing.T) {
	st := newStore(t)
	data := randomBytes(1<<20, 6)
	d := digest.FromBytes(data)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				w, err := st.Writer(context.Background(), d, int64(len(data)))
				if errors.Is(err, ErrExists) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				end := min(w.Offset()+100_000, int64(len(data)))
				if _, err := w.Write(data[w.Offset():end]); err != nil {
					t.Error(err)
				}
				if end == int64(len(data)) {
					if err := w.Commit(); err != nil {
						t.Error(err)
					}
					return
				}
				w.Close()
			}
		})
	}
	wg.Wait()
	if !bytes.Equal(readAllBlob(t, st, d), data) {
		t.Fatal("blob differs")
	}
}

// testRecord puts the blobs of a small image into st and returns its record.
func testRecord(t *testing.T, st *Store, name string) ImageRecord {
	t.Helper()
	config := []byte(`{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":[]}}` + name)
	layer := randomBytes(5000, uint64(len(name)))
	cd, ld := putT(t, st, config), putT(t, st, layer)
	manifest := mustJSON(t, ocispec.Manifest{
		Versioned: specsVersioned,
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(config))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: ld, Size: 5000}},
	})
	md := putT(t, st, manifest)
	rec := ImageRecord{
		Name:     name,
		Manifest: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md, Size: int64(len(manifest))},
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config:   ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(config))},
		Layers:   []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: ld, Size: 5000}},
	}
	rec.Size = rec.Manifest.Size + rec.Config.Size + 5000
	return rec
}

func TestImageRecords(t *testing.T) {
	dir := t.TempDir()
	st, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := testRecord(t, st, "docker.io/library/busybox:latest")
	other := testRecord(t, st, "example.com/app:1")

	for name, bad := range map[string]ImageRecord{
		"ShortName": func() ImageRecord { r := rec; r.Name = "busybox"; return r }(),
		"BadSize":   func() ImageRecord { r := rec; r.Size++; return r }(),
		"BadDigest": func() ImageRecord { r := rec; r.Config.Digest = "sha256:abc"; return r }(),
		"MissingRef": func() ImageRecord {
			r := rec
			r.Layers = append(r.Layers, r.Layers[0])
			r.Layers[1].Digest = digest.FromString("x")
			r.Size += r.Layers[1].Size
			return r
		}(),
	} {
		if err := st.PutImage(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("PutImage(%s): %v, want ErrInvalid", name, err)
		} else {
			t.Logf("PutImage(%s): %v", name, err)
		}
	}
	if err := st.PutImage(rec); err != nil {
		t.Fatal(err)
	}
	if err := st.PutImage(other); err != nil {
		t.Fatal(err)
	}
	got, err := st.Image("busybox")
	if err != nil || got.Manifest.Digest != rec.Manifest.Digest {
		t.Fatalf("Image(busybox) = %+v, %v", got, err)
	}
	got.Layers[0].Digest = "changed"
	if again, _ := st.Image("busybox"); again.Layers[0].Digest != rec.Layers[0].Digest {
		t.Error("a caller's change to a returned record reached the store")
	}
	if _, err := st.Image("nothing"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Image(nothing): %v, want ErrNotFound", err)
	}
	if err := st.Delete(rec.Layers[0].Digest); !errors.Is(err, api.ErrConflict) {
		t.Errorf("Delete of a blob in use: %v, want ErrConflict", err)
	}

	// Records survive a restart.
	st, err = NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	imgs := st.Images()
	if len(imgs) != 2 || imgs[0].Name != rec.Name || imgs[1].Name != other.Name {
		t.Fatalf("after reopening: %+v", imgs)
	}

	// GC keeps what records name; after DeleteImage it takes the blobs.
	junk := putT(t, st, []byte("junk"))
	res, err := st.GC(context.Background())
	if err != nil || res.Blobs != 1 || st.Has(junk) {
		t.Fatalf("GC = %+v, %v; want the one junk blob removed", res, err)
	}
	if err := st.DeleteImage("example.com/app:1"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteImage("example.com/app:1"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("second DeleteImage: %v", err)
	}
	if res, err := st.GC(context.Background()); err != nil || res.Blobs != 3 {
		t.Errorf("GC after DeleteImage = %+v, %v; want 3 blobs", res, err)
	}
	for _, b := range rec.Blobs() {
		if !st.Has(b.Digest) {
			t.Errorf("GC took %s of a remaining image", b.Digest)
		}
	}
}

func TestGCLeavesHeldAndFreshWork(t *testing.T) {
	st := newStore(t)
	release := st.hold()
	if _, err := st.GC(context.Background()); !errors.Is(err, ErrBusy) {
		t.Errorf("GC during an import: %v, want ErrBusy", err)
	}
	release()
	release() // twice is harmless

	ctx := context.Background()
	mk := func(content string) (*Writer, digest.Digest) {
		d := digest.FromString(content)
		w, err := st.Writer(ctx, d, int64(len(content)))
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(content[:2]))
		return w, d
	}
	stale, staleD := mk("stale partial")
	stale.Close()
	old := time.Now().Add(-2 * partialTTL)
	os.Chtimes(st.partialPath(staleD), old, old)
	fresh, freshD := mk("fresh partial")
	fresh.Close()

	// An open Writer holds the store: GC waits for it to end.
	open, openD := mk("open partial")
	if _, err := st.GC(ctx); !errors.Is(err, ErrBusy) {
		t.Errorf("GC with an open Writer: %v, want ErrBusy", err)
	}
	open.Close()
	os.Chtimes(st.partialPath(openD), old, old)

	// A stale partial that another process's Writer holds stays.
	f, err := os.Open(st.partialPath(openD))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := flockNB(f); err != nil {
		t.Fatal(err)
	}

	res, err := st.GC(ctx)
	if err != nil || res.Partials != 1 {
		t.Fatalf("GC = %+v, %v; want one stale partial removed", res, err)
	}
	for d, want := range map[digest.Digest]bool{staleD: false, freshD: true, openD: true} {
		if _, err := os.Stat(st.partialPath(d)); (err == nil) != want {
			t.Errorf("partial %s: exists=%v, want %v", d, err == nil, want)
		}
	}
}

// flockNB locks f as a Writer of another process would.
func flockNB(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) }

// A blob damaged on disk (same size, other bytes) is replaced by the next
// Put of its content instead of being kept.
func TestPutRepairsDamagedBlob(t *testing.T) {
	st := newStore(t)
	data := randomBytes(50_000, 7)
	d := putT(t, st, data)
	path := filepath.Join(st.Dir(), "blobs", string(d.Algorithm()), d.Encoded())
	damaged := bytes.Clone(data)
	damaged[25_000] ^= 0xff
	if err := os.WriteFile(path, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatalf("Put over a damaged blob: %v", err)
	}
	if got := readAllBlob(t, st, d); !bytes.Equal(got, data) {
		t.Fatal("the damaged blob was kept")
	}
}
