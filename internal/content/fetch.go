package content

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/drover-org/drover/api"
)

// Fetcher copies blobs and image records from a server that serves a
// store with Handler.
type Fetcher struct {
	// Client carries the transport and its credentials (the node's mutual
	// TLS); nil means http.DefaultClient.
	Client *http.Client
	// BaseURL is where Handler is mounted, such as
	// https://server:7443/v1/content.
	BaseURL string
}

// fetchAttempts is how often FetchImage tries a blob whose transfer broke;
// each try resumes where the last one stopped.
const fetchAttempts = 3

func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return http.DefaultClient
}

func (f *Fetcher) url(p string) string {
	return strings.TrimSuffix(f.BaseURL, "/") + p
}

// Image fetches the record of an image by reference.
func (f *Fetcher) Image(ctx context.Context, ref string) (ImageRecord, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url("/images/"+pathEscapeName(ref)), nil)
	if err != nil {
		return ImageRecord{}, err
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return ImageRecord{}, fmt.Errorf("image %s: %w", ref, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ImageRecord{}, fmt.Errorf("image %s: %w", ref, responseError(resp))
	}
	var rec ImageRecord
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJSONSize)).Decode(&rec); err != nil {
		return ImageRecord{}, fmt.Errorf("image %s: the server's record: %v: %w", ref, err, api.ErrInvalid)
	}
	if err := rec.Check(); err != nil {
		return ImageRecord{}, fmt.Errorf("image %s: the server's record: %w", ref, err)
	}
	return rec, nil
}

// pathEscapeName escapes each segment of an image name, keeping its
// slashes, which the server's {name...} pattern takes whole.
func pathEscapeName(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// Fetch copies one blob into dst unless dst has it. A transfer that breaks
// leaves what arrived in dst's partial file, and the next Fetch asks only
// for the rest (a Range request). The blob is verified at the end: a digest
// mismatch discards what was fetched and gives an error wrapping
// api.ErrInvalid; a blob the server lacks gives one wrapping
// api.ErrNotFound. Errors name the digest. progress, if not nil, is called
// with the bytes of the blob so far (counting those of earlier tries).
func (f *Fetcher) Fetch(ctx context.Context, d digest.Digest, size int64, dst *Store, progress func(done, total int64)) error {
	if err := checkBlob(d, size); err != nil {
		return err
	}
	release := dst.hold()
	defer release()
	return f.fetch(ctx, d, size, dst, progress)
}

func (f *Fetcher) fetch(ctx context.Context, d digest.Digest, size int64, dst *Store, progress func(done, total int64)) error {
	report := func(done int64) {
		if progress != nil {
			progress(done, size)
		}
	}
	w, err := dst.Writer(ctx, d, size)
	if errors.Is(err, ErrExists) {
		report(size)
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close() // keeps the partial unless committed or discarded
	report(w.Offset())
	if w.Offset() < size {
		if err := f.transfer(ctx, w, report); err != nil {
			return err
		}
	}
	return w.Commit()
}

// transfer appends the rest of the blob from the server to w.
func (f *Fetcher) transfer(ctx context.Context, w *Writer, report func(int64)) error {
	d, off := w.Digest(), w.Offset()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url("/blobs/"+d.String()), nil)
	if err != nil {
		return err
	}
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
		// Should the blob not be the one we started (it cannot, under its
		// digest, but a proxy may differ), the server sends it whole.
		req.Header.Set("If-Range", `"`+d.String()+`"`)
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return fmt.Errorf("fetching blob %s: %w", d, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); !ok || start != off {
			return fmt.Errorf("fetching blob %s: asked for bytes from %d, the server sent %q", d, off, resp.Header.Get("Content-Range"))
		}
	case http.StatusOK:
		if off > 0 {
			if err := w.Reset(); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("fetching blob %s: %w", d, responseError(resp))
	}

	buf := make([]byte, 64<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				if errors.Is(err, api.ErrInvalid) {
					w.Discard()
				}
				return err
			}
			report(w.Offset())
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("fetching blob %s: transfer broke after %d of %d bytes (fetching again resumes): %w",
				d, w.Offset(), w.Size(), rerr)
		}
	}
}

// contentRangeStart reads the first byte position of "bytes A-B/N".
func contentRangeStart(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil
}

// responseError turns a failed response into an error: the server's
// api.Error when it sent one (which matches the API's sentinels), else one
// made from the status.
func responseError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e api.Error
	if json.Unmarshal(body, &e) == nil && e.Code != "" {
		e.Status = resp.StatusCode
		return &e
	}
	msg := strings.TrimSpace(string(body))
	if msg == "" {
		msg = resp.Status
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return api.Errorf(api.ErrNotFound, "the server does not have it: %s", msg)
	case http.StatusBadRequest:
		return api.Errorf(api.ErrInvalid, "the server refused the request: %s", msg)
	case http.StatusForbidden, http.StatusUnauthorized:
		return api.Errorf(api.ErrForbidden, "the server refused access: %s", msg)
	case http.StatusServiceUnavailable:
		return api.Errorf(api.ErrUnavailable, "the server is unavailable: %s", msg)
	}
	return fmt.Errorf("the server answered %s: %s", resp.Status, msg)
}

// FetchImage copies the blobs of rec that dst lacks, then adds rec to dst.
// A broken transfer is retried (resuming) a few times; a missing or
// corrupt blob is not. progress, if not nil, is called with the bytes of
// the whole image so far, blobs dst already had included.
func (f *Fetcher) FetchImage(ctx context.Context, rec ImageRecord, dst *Store, progress func(done, total int64)) error {
	if err := rec.Check(); err != nil {
		return err
	}
	release := dst.hold()
	defer release()
	var done int64
	for _, b := range rec.Blobs() {
		base := done
		blobProgress := func(n, _ int64) {
			if progress != nil {
				progress(base+n, rec.Size)
			}
		}
		var err error
		for attempt := 1; attempt <= fetchAttempts; attempt++ {
			if err = f.fetch(ctx, b.Digest, b.Size, dst, blobProgress); !retryable(ctx, err) {
				break
			}
			if attempt < fetchAttempts {
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
				}
			}
		}
		if err != nil {
			return fmt.Errorf("image %s: %w", rec.Name, err)
		}
		done += b.Size
	}
	return dst.PutImage(rec)
}

// retryable says whether trying a fetch again may help: not for success,
// a missing or corrupt blob, refused access or an ended context.
func retryable(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	for _, final := range []error{api.ErrNotFound, api.ErrInvalid, api.ErrForbidden} {
		if errors.Is(err, final) {
			return false
		}
	}
	return true
}
