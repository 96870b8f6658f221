package content

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/drover-org/drover/api"
)

// server serves st with Handler, recording each request's method, path
// and Range header. intercept, if set, may answer a request itself.
type server struct {
	*httptest.Server
	mu        sync.Mutex
	requests  []string
	intercept func(w http.ResponseWriter, r *http.Request, n int) bool
}

func newServer(t *testing.T, st *Store) *server {
	t.Helper()
	s := &server{}
	h := Handler(st)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+r.Header.Get("Range")))
		n := len(s.requests)
		s.mu.Unlock()
		if s.intercept != nil && s.intercept(w, r, n) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *server) fetcher() *Fetcher {
	return &Fetcher{Client: s.Client(), BaseURL: s.URL + "/"}
}

func TestHandler(t *testing.T) {
	st := newStore(t)
	data := randomBytes(10_000, 7)
	d := putT(t, st, data)
	rec := testRecord(t, st, "docker.io/library/busybox:latest")
	if err := st.PutImage(rec); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, st)
	get := func(method, path, rng string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	resp, body := get("GET", "/blobs/"+d.String(), "")
	if resp.StatusCode != 200 || string(body) != string(data) || resp.Header.Get("Etag") != `"`+d.String()+`"` {
		t.Errorf("GET blob: %s, %d bytes, ETag %q", resp.Status, len(body), resp.Header.Get("Etag"))
	}
	resp, body = get("HEAD", "/blobs/"+d.String(), "")
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 10_000 {
		t.Errorf("HEAD blob: %s, length %d", resp.Status, resp.ContentLength)
	}
	resp, body = get("GET", "/blobs/"+d.String(), "bytes=9990-")
	if resp.StatusCode != 206 || string(body) != string(data[9990:]) || resp.Header.Get("Content-Range") != "bytes 9990-9999/10000" {
		t.Errorf("GET blob range: %s, %q", resp.Status, resp.Header.Get("Content-Range"))
	}
	for path, want := range map[string]int{
		"/blobs/sha256:nothex":                      400,
		"/blobs/" + digest.FromString("x").String(): 404,
		"/images/nothing:1":                         404,
	} {
		resp, body := get("GET", path, "")
		var e api.Error
		if resp.StatusCode != want || json.Unmarshal(body, &e) != nil || e.Message == "" {
			t.Errorf("GET %s: %s %s, want %d with an api.Error", path, resp.Status, body, want)
		}
	}
	resp, body = get("GET", "/images", "")
	var list []ImageRecord
	if resp.StatusCode != 200 || json.Unmarshal(body, &list) != nil || len(list) != 1 || list[0].Name != rec.Name {
		t.Errorf("GET /images: %s %s", resp.Status, body)
	}
	got, err := srv.fetcher().Image(context.Background(), "busybox")
	if err != nil || got.Manifest.Digest != rec.Manifest.Digest || got.Name != rec.Name {
		t.Errorf("Fetcher.Image(busybox) = %+v, %v", got, err)
	}
	if _, err := srv.fetcher().Image(context.Background(), "example.com/none:1"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Fetcher.Image of an unknown image: %v, want ErrNotFound", err)
	}
}

func TestFetch(t *testing.T) {
	src, dst := newStore(t), newStore(t)
	data := randomBytes(200_000, 8)
	d := putT(t, src, data)
	srv := newServer(t, src)
	var last [2]int64
	progress := func(done, total int64) { last = [2]int64{done, total} }
	if err := srv.fetcher().Fetch(context.Background(), d, int64(len(data)), dst, progress); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(readAllBlob(t, dst, d), data) {
		t.Error("fetched blob differs")
	}
	if last != [2]int64{200_000, 200_000} {
		t.Errorf("last progress %v", last)
	}
	// Present: no request at all.
	if err := srv.fetcher().Fetch(context.Background(), d, int64(len(data)), dst, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.log()); n != 1 {
		t.Errorf("%d requests, want 1: %v", n, srv.log())
	}
}

// TestFetchResumes cuts the connection in the middle of a blob: the next
// Fetch asks for the rest only, and the result is intact.
func TestFetchResumes(t *testing.T) {
	src, dst := newStore(t), newStore(t)
	data := randomBytes(1<<20, 9)
	d := putT(t, src, data)
	srv := newServer(t, src)
	srv.intercept = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n > 1 {
			return false
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drops the connection
	}
	f := srv.fetcher()
	err := f.Fetch(context.Background(), d, int64(len(data)), dst, nil)
	if err == nil || !strings.Contains(err.Error(), d.String()) || errors.Is(err, api.ErrInvalid) {
		t.Fatalf("Fetch over a cut connection: %v; want an error naming %s", err, d)
	}
	fi, err := os.Stat(dst.partialPath(d))
	if err != nil || fi.Size() == 0 {
		t.Fatalf("no partial file kept: %v", err)
	}
	kept := fi.Size()

	var first int64 = -1
	progress := func(done, total int64) {
		if first < 0 {
			first = done
		}
	}
	if err := f.Fetch(context.Background(), d, int64(len(data)), dst, progress); err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
	log := srv.log()
	if want := "GET /blobs/" + d.String() + " bytes=" + strconv.FormatInt(kept, 10) + "-"; len(log) != 2 || log[1] != want {
		t.Errorf("requests %v; want the second to be %q", log, want)
	}
	if first != kept {
		t.Errorf("progress started at %d, want %d", first, kept)
	}
	if !slices.Equal(readAllBlob(t, dst, d), data) {
		t.Error("resumed blob differs")
	}
	t.Logf("first transfer kept %d of %d bytes", kept, len(data))
}

// TestFetchRefusesCorruptBlob: a server that sends other bytes under the
// digest is caught, and nothing of it is kept to resume from.
func TestFetchRefusesCorruptBlob(t *testing.T) {
	src, dst := newStore(t), newStore(t)
	data := randomBytes(50_000, 10)
	d := putT(t, src, data)
	srv := newServer(t, src)
	srv.intercept = func(w http.ResponseWriter, r *http.Request, n int) bool {
		bad := slices.Clone(data)
		bad[25_000] ^= 0xff
		w.Write(bad)
		return true
	}
	err := srv.fetcher().Fetch(context.Background(), d, int64(len(data)), dst, nil)
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), d.String()) {
		t.Fatalf("Fetch of corrupt bytes: %v; want ErrInvalid naming %s", err, d)
	}
	if dst.Has(d) {
		t.Error("corrupt blob stored")
	}
	if _, err := os.Stat(dst.partialPath(d)); !os.IsNotExist(err) {
		t.Error("corrupt partial kept")
	}

	// Too many bytes are refused as they come.
	srv.intercept = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.Write(append(slices.Clone(data), "extra"...))
		return true
	}
	if err := srv.fetcher().Fetch(context.Background(), d, int64(len(data)), dst, nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Fetch of an over-long blob: %v, want ErrInvalid", err)
	}
}

func TestFetchNotFound(t *testing.T) {
	srv := newServer(t, newStore(t))
	d := digest.FromString("nowhere")
	err := srv.fetcher().Fetch(context.Background(), d, 7, newStore(t), nil)
	if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), d.String()) {
		t.Errorf("Fetch of a missing blob: %v; want ErrNotFound naming %s", err, d)
	}
	// A server that is not ours answers plain text.
	srv.intercept = func(w http.ResponseWriter, r *http.Request, n int) bool {
		http.NotFound(w, r)
		return true
	}
	err = srv.fetcher().Fetch(context.Background(), d, 7, newStore(t), nil)
	if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), d.String()) {
		t.Errorf("Fetch from a plain 404: %v; want ErrNotFound naming %s", err, d)
	}
}

// TestFetchImage fetches only what the node lacks, retries a broken
// transfer, and records the image.
func TestFetchImage(t *testing.T) {
	src, dst := newStore(t), newStore(t)
	recs, err := ReadArchive(context.Background(), src, strings.NewReader(string(ociArchive(t, tinyImage(t, "fetch"), "busybox"))), hostPlatform)
	if err != nil {
		t.Fatal(err)
	}
	rec := recs[0]
	// The node has the config already.
	cf, _, _ := src.Open(rec.Config.Digest)
	if err := dst.Put(rec.Config.Digest, rec.Config.Size, cf); err != nil {
		t.Fatal(err)
	}
	cf.Close()

	srv := newServer(t, src)
	layer := rec.Layers[0]
	srv.intercept = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if !strings.HasSuffix(r.URL.Path, layer.Digest.String()) || strings.Contains(strings.Join(srv.log()[:n-1], " "), layer.Digest.String()) {
			return false
		}
		// The first request for the layer breaks after 100 bytes.
		f, _, _ := src.Open(layer.Digest)
		defer f.Close()
		w.Header().Set("Content-Length", strconv.FormatInt(layer.Size, 10))
		io.CopyN(w, f, 100)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	var last [2]int64
	err = srv.fetcher().FetchImage(context.Background(), rec, dst, func(done, total int64) { last = [2]int64{done, total} })
	if err != nil {
		t.Fatalf("FetchImage: %v", err)
	}
	want := []string{
		"GET /blobs/" + rec.Manifest.Digest.String(),
		"GET /blobs/" + layer.Digest.String(),
		"GET /blobs/" + layer.Digest.String() + " bytes=100-",
	}
	if log := srv.log(); !slices.Equal(log, want) {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
	if last != [2]int64{rec.Size, rec.Size} {
		t.Errorf("last progress %v, want %d of %d", last, rec.Size, rec.Size)
	}
	got, err := dst.Image(rec.Name)
	if err != nil || got.Manifest.Digest != rec.Manifest.Digest {
		t.Errorf("dst.Image = %+v, %v", got, err)
	}
	verifyStore(t, dst)
	if stored := storedDigests(t, dst); len(stored) != 3 {
		t.Errorf("dst holds %d blobs, want 3", len(stored))
	}
}
