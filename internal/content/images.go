package content

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-org/drover/api"
)

// maxLayers bounds the layers of one image; real images stay far below it
// (overlayfs stacks at most about 128).
const maxLayers = 1024

// ImageRecord is an image of the store: a name and the blobs of one
// platform's manifest.
type ImageRecord struct {
	// Name is the full reference, as the containerd driver names images:
	// docker.io/library/busybox:latest.
	Name string `json:"name"`
	// Manifest is the image manifest for Platform, which a node's
	// containerd image points to.
	Manifest ocispec.Descriptor `json:"manifest"`
	Platform ocispec.Platform   `json:"platform"`
	Config   ocispec.Descriptor `json:"config"`
	// Layers are in the manifest's order (base first).
	Layers []ocispec.Descriptor `json:"layers"`
	// Index is the multi-platform index Manifest was chosen from, if any.
	Index *ocispec.Descriptor `json:"index,omitempty"`
	// Size is the total size of Blobs.
	Size int64 `json:"size"`
	// Created is when the image was built, as its config says.
	Created time.Time `json:"created,omitzero"`
}

// Blobs lists the image's blobs once each: manifest, config, layers and
// the index if any.
func (r ImageRecord) Blobs() []ocispec.Descriptor {
	out := make([]ocispec.Descriptor, 0, len(r.Layers)+3)
	seen := map[digest.Digest]bool{}
	add := func(d ocispec.Descriptor) {
		if !seen[d.Digest] {
			seen[d.Digest] = true
			out = append(out, d)
		}
	}
	add(r.Manifest)
	add(r.Config)
	for _, l := range r.Layers {
		add(l)
	}
	if r.Index != nil {
		add(*r.Index)
	}
	return out
}

// clone copies the record so that callers cannot change the store's.
func (r ImageRecord) clone() ImageRecord {
	r.Layers = slices.Clone(r.Layers)
	r.Platform.OSFeatures = slices.Clone(r.Platform.OSFeatures)
	if r.Index != nil {
		idx := *r.Index
		r.Index = &idx
	}
	return r
}

// NormalizeName gives the full name of an image reference, the one the
// containerd driver stores it under: "busybox" ->
// "docker.io/library/busybox:latest". An invalid reference gives an error
// wrapping api.ErrInvalid.
func NormalizeName(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: not a valid image reference: %v: %w", ref, err, api.ErrInvalid)
	}
	return named.String(), nil
}

// checkDescriptor checks a descriptor from outside (an archive, a request)
// before anything trusts its digest or size.
func checkDescriptor(d ocispec.Descriptor, what string) error {
	if err := checkBlob(d.Digest, d.Size); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Check says whether the record is well formed: a normalized name, valid
// descriptors and a Size that adds up. It does not look at any store.
func (r ImageRecord) Check() error {
	name, err := NormalizeName(r.Name)
	if err != nil {
		return err
	}
	if name != r.Name {
		return fmt.Errorf("image %q: name is not in its full form %q: %w", r.Name, name, api.ErrInvalid)
	}
	if err := checkDescriptor(r.Manifest, "image "+r.Name+" manifest"); err != nil {
		return err
	}
	// A runtime points its image at the manifest, which it must know to
	// be one.
	if mt := r.Manifest.MediaType; mt != ocispec.MediaTypeImageManifest && mt != mediaTypeDockerManifest {
		return fmt.Errorf("image %s: manifest media type %q is not an image manifest's: %w", r.Name, mt, api.ErrInvalid)
	}
	if err := checkDescriptor(r.Config, "image "+r.Name+" config"); err != nil {
		return err
	}
	if len(r.Layers) > maxLayers {
		return fmt.Errorf("image %s: %d layers, more than %d: %w", r.Name, len(r.Layers), maxLayers, api.ErrInvalid)
	}
	for i, l := range r.Layers {
		if err := checkDescriptor(l, fmt.Sprintf("image %s layer %d", r.Name, i)); err != nil {
			return err
		}
	}
	if r.Index != nil {
		if err := checkDescriptor(*r.Index, "image "+r.Name+" index"); err != nil {
			return err
		}
	}
	var total int64
	for _, b := range r.Blobs() {
		total += b.Size
	}
	if total != r.Size {
		return fmt.Errorf("image %s: size %d, but its blobs add up to %d: %w", r.Name, r.Size, total, api.ErrInvalid)
	}
	return nil
}

func (s *Store) imagePath(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(s.dir, "images", hex.EncodeToString(sum[:])+".json")
}

// PutImage adds or replaces an image record. Every blob it names must be in
// the store with the record's size (else an error wrapping
// api.ErrInvalid), so a record never points at missing content.
func (s *Store) PutImage(rec ImageRecord) error {
	if err := rec.Check(); err != nil {
		return err
	}
	release := s.hold()
	defer release()
	for _, b := range rec.Blobs() {
		info, err := s.Info(b.Digest)
		if errors.Is(err, api.ErrNotFound) {
			return fmt.Errorf("image %s: blob %s is not in the content store: %w", rec.Name, b.Digest, api.ErrInvalid)
		}
		if err != nil {
			return err
		}
		if info.Size != b.Size {
			return fmt.Errorf("image %s: blob %s has %d bytes, the record says %d: %w", rec.Name, b.Digest, info.Size, b.Size, api.ErrInvalid)
		}
	}
	rec = rec.clone()
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writeFileAtomic(s.imagePath(rec.Name), data); err != nil {
		return fmt.Errorf("image %s: writing its record: %w", rec.Name, err)
	}
	s.images[rec.Name] = rec
	return nil
}

// Image returns the record of an image by reference, in any spelling that
// normalizes to its name ("busybox" finds docker.io/library/busybox:latest).
// An unknown image gives an error wrapping api.ErrNotFound.
func (s *Store) Image(ref string) (ImageRecord, error) {
	name, err := NormalizeName(ref)
	if err != nil {
		return ImageRecord{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.images[name]
	if !ok {
		return ImageRecord{}, fmt.Errorf("image %s is not in the content store: load it with `drover image load`: %w", name, api.ErrNotFound)
	}
	return rec.clone(), nil
}

// Images returns every image record, sorted by name.
func (s *Store) Images() []ImageRecord {
	s.mu.Lock()
	out := make([]ImageRecord, 0, len(s.images))
	for _, rec := range s.images {
		out = append(out, rec.clone())
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DeleteImage removes an image record. Its blobs stay until GC finds no
// other record naming them.
func (s *Store) DeleteImage(ref string) error {
	name, err := NormalizeName(ref)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.images[name]; !ok {
		return fmt.Errorf("image %s is not in the content store: %w", name, api.ErrNotFound)
	}
	if err := os.Remove(s.imagePath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("image %s: %w", name, err)
	}
	delete(s.images, name)
	return s.syncDir(filepath.Join(s.dir, "images"))
}

func (s *Store) loadImages() error {
	dir := filepath.Join(s.dir, "images")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("content store: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("content store: %w", err)
		}
		var rec ImageRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			return fmt.Errorf("content store: image record %s: %v: %w", p, err, api.ErrInvalid)
		}
		if err := rec.Check(); err != nil {
			return fmt.Errorf("content store: image record %s: %w", p, err)
		}
		if s.imagePath(rec.Name) != p {
			return fmt.Errorf("content store: image record %s holds image %s, whose file name differs: %w", p, rec.Name, api.ErrInvalid)
		}
		s.images[rec.Name] = rec
	}
	return nil
}
