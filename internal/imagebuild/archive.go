package imagebuild

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drover-org/drover/api"
)

// Annotations of index.json that name the image in an OCI archive.
const (
	// AnnotationRefName holds the reference as given (with a tag).
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationImageName holds the fully normalized reference, which is
	// the name containerd gives the imported image.
	AnnotationImageName = "io.containerd.image.name"
)

// imageRef is a parsed image reference in its three spellings.
type imageRef struct {
	full       string // as given, with ":latest" added if untagged
	normalized string // docker.io/library/busybox:latest
	familiar   string // busybox:latest, as `docker save` writes it
}

// parseRef checks an image reference; "" means DefaultRef. Digest
// references are refused: an archive names an image by tag.
func parseRef(ref string) (imageRef, error) {
	if ref == "" {
		ref = DefaultRef
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return imageRef{}, fmt.Errorf("image reference %q: %v: %w", ref, err, api.ErrInvalid)
	}
	if _, ok := named.(reference.Digested); ok {
		return imageRef{}, fmt.Errorf("image reference %q: use a tag, not a digest: %w", ref, api.ErrInvalid)
	}
	tagged := reference.TagNameOnly(named)
	full := ref
	if _, ok := named.(reference.Tagged); !ok {
		full = ref + ":latest"
	}
	return imageRef{
		full:       full,
		normalized: tagged.String(),
		familiar:   reference.FamiliarString(tagged),
	}, nil
}

// WriteOCIArchive writes img as a tar of an OCI image layout. The single
// entry of index.json carries the reference: ref as given under
// org.opencontainers.image.ref.name, fully normalized under
// io.containerd.image.name. An empty ref means DefaultRef. The output is
// byte-for-byte reproducible.
func WriteOCIArchive(w io.Writer, img v1.Image, ref string) error {
	r, err := parseRef(ref)
	if err != nil {
		return err
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("image manifest: %w", err)
	}
	mediaType, err := img.MediaType()
	if err != nil {
		return fmt.Errorf("image media type: %w", err)
	}
	manifestDigest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	configName, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("image config digest: %w", err)
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("image layers: %w", err)
	}

	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mediaType,
			Size:      int64(len(manifest)),
			Digest:    manifestDigest,
			Annotations: map[string]string{
				AnnotationRefName:   r.full,
				AnnotationImageName: r.normalized,
			},
			Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant},
		}},
	})
	if err != nil {
		return err
	}

	aw := archiveWriter{tw: tar.NewWriter(w), written: map[string]bool{}}
	aw.dir("blobs")
	aw.file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	aw.blob(configName, bytes.NewReader(config), int64(len(config)))
	for i, l := range layers {
		if aw.err != nil {
			break
		}
		d, err := l.Digest()
		if err != nil {
			return fmt.Errorf("layer %d digest: %w", i, err)
		}
		size, err := l.Size()
		if err != nil {
			return fmt.Errorf("layer %d size: %w", i, err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		aw.blob(d, rc, size)
		rc.Close()
	}
	aw.blob(manifestDigest, bytes.NewReader(manifest), int64(len(manifest)))
	aw.file("index.json", index)
	if aw.err != nil {
		return fmt.Errorf("writing OCI archive: %w", aw.err)
	}
	if err := aw.tw.Close(); err != nil {
		return fmt.Errorf("writing OCI archive: %w", err)
	}
	return nil
}

// archiveWriter writes tar members with fixed metadata, keeping the first
// error so the caller checks once.
type archiveWriter struct {
	tw      *tar.Writer
	written map[string]bool
	err     error
}

func (a *archiveWriter) dir(name string) {
	if a.err != nil || a.written[name] {
		return
	}
	a.written[name] = true
	a.err = a.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
}

func (a *archiveWriter) file(name string, data []byte) {
	a.stream(name, bytes.NewReader(data), int64(len(data)))
}

// stream writes a member of size bytes read from r.
func (a *archiveWriter) stream(name string, r io.Reader, size int64) {
	if a.err != nil || a.written[name] {
		return
	}
	a.written[name] = true
	if a.err = a.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: epoch, Format: tar.FormatPAX}); a.err != nil {
		return
	}
	n, err := io.Copy(a.tw, r)
	if err == nil && n != size {
		err = fmt.Errorf("%s: wrote %d bytes, want %d", name, n, size)
	}
	a.err = err
}

// blob writes a content-addressed blob once, under blobs/<algorithm>/<hex>.
func (a *archiveWriter) blob(d v1.Hash, r io.Reader, size int64) {
	a.dir("blobs/" + d.Algorithm)
	a.stream("blobs/"+d.Algorithm+"/"+d.Hex, r, size)
}

// WriteDockerArchive writes img in the `docker save` format, tagged with
// ref in its familiar form (busybox:latest), as docker save names images.
// An empty ref means DefaultRef.
func WriteDockerArchive(w io.Writer, img v1.Image, ref string) error {
	r, err := parseRef(ref)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(r.familiar)
	if err != nil {
		return fmt.Errorf("image reference %q: %v: %w", ref, err, api.ErrInvalid)
	}
	if err := tarball.Write(tag, img, w); err != nil {
		return fmt.Errorf("writing docker archive: %w", err)
	}
	return nil
}
