package content

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-org/drover/api"
)

// Limits on archive input. Only JSON documents are read into memory; the
// rest streams to disk.
const (
	maxJSONSize       = 8 << 20
	maxArchiveEntries = 1 << 16
	// Budgets for resolving the images, so that indexes naming indexes
	// many times over cannot make the work explode.
	maxBlobChecks   = 1 << 16
	maxJSONReadings = 64 << 20
)

// Names of the archive members that are not blobs.
const (
	ociLayoutFile      = "oci-layout"
	ociIndexFile       = "index.json"
	dockerManifestFile = "manifest.json"
)

// ReadArchive reads an image archive into st and returns the records of the
// images it names, sorted by name, after adding them to st. The archive is
// an OCI image layout or a `docker save` tar (an archive that is both, as
// Docker 25 writes, is read as OCI), either one possibly gzip-compressed as
// a whole. Images are named as the containerd driver's Import names them:
// by the io.containerd.image.name or org.opencontainers.image.ref.name
// annotation of index.json, or by docker's RepoTags, in full form
// (docker.io/library/busybox:latest).
//
// From a multi-platform index the manifest that best matches platform
// (the zero Platform: this host's, linux/runtime.GOARCH) is kept, and the
// record keeps the index too; a single-platform image is kept whatever its
// platform.
//
// Every blob is verified against its digest. Bad input (not a tar,
// truncated, missing blobs, bad JSON, bad digests, names leaving the
// archive, sizes out of range) gives an error wrapping api.ErrInvalid; an
// error of r itself is returned as such.
//
// Blobs of the archive that no record names (other platforms, the extra
// files of old docker archives, everything of a failed read) are removed
// by a GC at the end, or by a later GC while another import is running.
func ReadArchive(ctx context.Context, st *Store, r io.Reader, platform ocispec.Platform) ([]ImageRecord, error) {
	if platform.OS == "" && platform.Architecture == "" {
		platform = platforms.DefaultSpec()
	}
	release := st.hold()
	recs, err := readArchive(ctx, st, r, platform)
	release()
	// Best effort: ErrBusy just postpones the cleanup.
	_, _ = st.GC(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	return recs, nil
}

// archive is what the members of an archive told.
type archive struct {
	st    *Store
	src   *errReader // the caller's reader, to tell its errors from bad input
	json  map[string][]byte
	files map[string]ocispec.Descriptor // regular members by clean path
	links map[string]string             // symlinks and hard links by clean path

	checks   int   // blob checks made while resolving, against maxBlobChecks
	jsonRead int64 // bytes of JSON documents read, against maxJSONReadings
}

func readArchive(ctx context.Context, st *Store, r io.Reader, platform ocispec.Platform) ([]ImageRecord, error) {
	a := &archive{
		st:    st,
		src:   &errReader{r: r},
		json:  map[string][]byte{},
		files: map[string]ocispec.Descriptor{},
		links: map[string]string{},
	}
	br := bufio.NewReader(a.src)
	var in io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, a.bad(err)
		}
		defer zr.Close()
		in = zr
	}
	if err := a.readMembers(ctx, in); err != nil {
		return nil, err
	}
	// What follows the tar's end is read too, so that a gzip stream's
	// checksum is verified; a little trailing padding is normal.
	if _, err := io.CopyN(io.Discard, in, 1<<20); err != nil && err != io.EOF {
		return nil, a.bad(err)
	}

	var recs []ImageRecord
	var err error
	switch {
	case a.json[ociLayoutFile] != nil:
		recs, err = a.ociImages(platform)
	case a.json[dockerManifestFile] != nil:
		recs, err = a.dockerImages()
	default:
		return nil, fmt.Errorf("image archive: neither an OCI image layout (no %s file) nor a `docker save` archive (no %s): %w",
			ociLayoutFile, dockerManifestFile, api.ErrInvalid)
	}
	if err != nil {
		return nil, err
	}

	// A later entry of the same name wins, as it does in containerd.
	byName := map[string]ImageRecord{}
	for _, rec := range recs {
		rec.Size = 0
		for _, b := range rec.Blobs() {
			rec.Size += b.Size
		}
		byName[rec.Name] = rec
	}
	if len(byName) == 0 {
		return nil, fmt.Errorf("the image archive names no image: an OCI archive needs an io.containerd.image.name "+
			"or org.opencontainers.image.ref.name annotation with a full reference in index.json, "+
			"a docker-save archive RepoTags in manifest.json: %w", api.ErrInvalid)
	}
	out := make([]ImageRecord, 0, len(byName))
	for _, rec := range byName {
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for _, rec := range out {
		if err := st.PutImage(rec); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// bad turns an error met while reading the archive into the error to
// return: the caller's reader failing is not bad input.
func (a *archive) bad(err error) error {
	if a.src.err != nil {
		return fmt.Errorf("reading the image archive: %w", a.src.err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("image archive: ends early (truncated, or not a tar archive at all): %w", api.ErrInvalid)
	}
	return fmt.Errorf("image archive: not a valid tar or gzip stream: %v: %w", err, api.ErrInvalid)
}

func (a *archive) readMembers(ctx context.Context, in io.Reader) error {
	tr := tar.NewReader(in)
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return a.bad(err)
		}
		if n >= maxArchiveEntries {
			return fmt.Errorf("image archive: more than %d members: %w", maxArchiveEntries, api.ErrInvalid)
		}
		name, err := memberName(hdr.Name)
		if err != nil {
			return err
		}
		// A sparse member expands holes into zeros that the input never
		// carried: a few bytes could claim a terabyte.
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return fmt.Errorf("image archive: member %s is a sparse file, which no image archive holds: %w", name, api.ErrInvalid)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
		case tar.TypeSymlink:
			// Old docker archives link a repeated layer to its first copy.
			target := hdr.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target)
			}
			if a.links[name], err = linkTarget(name, target); err != nil {
				return err
			}
			continue
		case tar.TypeLink:
			if a.links[name], err = linkTarget(name, hdr.Linkname); err != nil {
				return err
			}
			continue
		default:
			continue // directories, and nothing else belongs in an image archive
		}
		if hdr.Size < 0 || hdr.Size > MaxBlobSize {
			return fmt.Errorf("image archive: member %s: size %d out of range: %w", name, hdr.Size, api.ErrInvalid)
		}
		switch name {
		case ociLayoutFile, ociIndexFile, dockerManifestFile:
			if hdr.Size > maxJSONSize {
				return fmt.Errorf("image archive: %s has %d bytes, more than %d: %w", name, hdr.Size, maxJSONSize, api.ErrInvalid)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return a.bad(err)
			}
			a.json[name] = b
			continue
		}
		er := &errReader{r: tr}
		var desc ocispec.Descriptor
		if strings.HasPrefix(name, "blobs/") {
			d, err := blobMemberDigest(name)
			if err != nil {
				return err
			}
			desc = ocispec.Descriptor{Digest: d, Size: hdr.Size}
			err = a.st.Put(d, hdr.Size, er)
			if err != nil && er.err == nil {
				return fmt.Errorf("image archive: member %s: %w", name, err)
			}
		} else {
			// A docker-save member is named by layer ID, not by digest.
			desc.Digest, desc.Size, err = a.st.ingest(er, hdr.Size)
		}
		if er.err != nil {
			return a.bad(er.err)
		}
		if err != nil {
			return fmt.Errorf("image archive: member %s: %w", name, err)
		}
		a.files[name] = desc
	}
}

// memberName cleans a member's name and refuses one that would leave the
// archive's root. Members are never written under their names, but a name
// that tries to escape marks the archive as crafted.
func memberName(name string) (string, error) {
	clean := path.Clean(name)
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("image archive: member name %q leaves the archive: %w", name, api.ErrInvalid)
	}
	return clean, nil
}

func linkTarget(name, target string) (string, error) {
	clean, err := memberName(target)
	if err != nil {
		return "", fmt.Errorf("image archive: member %s links to %q, outside the archive: %w", name, target, api.ErrInvalid)
	}
	return clean, nil
}

// blobMemberDigest reads the digest of a member named
// blobs/<algorithm>/<hex>.
func blobMemberDigest(name string) (digest.Digest, error) {
	parts := strings.Split(name, "/")
	if len(parts) != 3 {
		return "", fmt.Errorf("image archive: member %s: want blobs/<algorithm>/<hex>: %w", name, api.ErrInvalid)
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[2])
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("image archive: member %s: not a valid digest: %v: %w", name, err, api.ErrInvalid)
	}
	return d, nil
}

// member finds the blob a docker manifest.json path names, through links.
func (a *archive) member(p string) (ocispec.Descriptor, error) {
	name, err := memberName(p)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	for range 16 {
		if desc, ok := a.files[name]; ok {
			return desc, nil
		}
		target, ok := a.links[name]
		if !ok {
			break
		}
		name = target
	}
	return ocispec.Descriptor{}, fmt.Errorf("image archive: manifest.json names %q, which the archive lacks: %w", p, api.ErrInvalid)
}

// errReader remembers the first error, other than io.EOF, of its reader.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
