package content

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-org/drover/internal/imagebuild"
)

func newStore(t testing.TB) *Store {
	t.Helper()
	st, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

var specsVersioned = specs.Versioned{SchemaVersion: 2}

// hostPlatform is the platform ReadArchive keeps in these tests.
var hostPlatform = ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}

// tinyImage builds an imagebuild image around a stand-in busybox of a few
// bytes, which keeps archives small (seeds for the fuzz target) and needs
// no busybox on the machine. extra makes images differ.
func tinyImage(t testing.TB, extra string) v1.Image {
	t.Helper()
	bb := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(bb, []byte("not really busybox"), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := imagebuild.Build(imagebuild.Options{
		Busybox: bb,
		Files:   map[string]imagebuild.File{"/extra.txt": {Data: []byte(extra)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func ociArchive(t testing.TB, img v1.Image, ref string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := imagebuild.WriteOCIArchive(&buf, img, ref); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func dockerArchive(t testing.TB, img v1.Image, ref string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := imagebuild.WriteDockerArchive(&buf, img, ref); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// member is one entry of a hand-made archive.
type member struct {
	name     string
	data     []byte
	typeflag byte // 0: regular file
	linkname string
}

func blobMember(b []byte) member {
	d := digest.FromBytes(b)
	return member{name: "blobs/sha256/" + d.Encoded(), data: b}
}

func writeTar(t testing.TB, members ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		hdr := &tar.Header{Name: m.name, Mode: 0o644, Typeflag: m.typeflag, Linkname: m.linkname}
		if m.typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(m.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// imageParts are the raw blobs of an image.
type imageParts struct {
	manifest, config []byte
	manifestType     string
	layers           [][]byte
}

func partsOf(t testing.TB, img v1.Image) imageParts {
	t.Helper()
	var p imageParts
	var err error
	if p.manifest, err = img.RawManifest(); err != nil {
		t.Fatal(err)
	}
	if p.config, err = img.RawConfigFile(); err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	p.manifestType = string(mt)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		p.layers = append(p.layers, b)
	}
	return p
}

func (p imageParts) members() []member {
	ms := []member{blobMember(p.config), blobMember(p.manifest)}
	for _, l := range p.layers {
		ms = append(ms, blobMember(l))
	}
	return ms
}

func (p imageParts) desc(platform *ocispec.Platform) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType: p.manifestType,
		Digest:    digest.FromBytes(p.manifest),
		Size:      int64(len(p.manifest)),
		Platform:  platform,
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withArch returns img for another architecture: a new config and
// manifest over the same layers.
func withArch(t testing.TB, img v1.Image, arch string) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = arch
	out, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// multiPlatformArchive is an OCI archive whose index.json names, under ref,
// an index of the image for amd64 and for arm64 (sharing layers), as
// `docker buildx` and `skopeo --all` write them.
func multiPlatformArchive(t testing.TB, img v1.Image, ref string) (archive []byte, amd64, arm64 imageParts, index []byte) {
	t.Helper()
	amd64 = partsOf(t, withArch(t, img, "amd64"))
	arm64 = partsOf(t, withArch(t, img, "arm64"))
	index = mustJSON(t, ocispec.Index{
		Versioned: specsVersioned,
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{
			arm64.desc(&ocispec.Platform{OS: "linux", Architecture: "arm64"}),
			amd64.desc(&ocispec.Platform{OS: "linux", Architecture: "amd64"}),
			// An attestation manifest as buildx adds, which no platform matches.
			{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("attestation"), Size: 11,
				Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"}},
		},
	})
	top := mustJSON(t, ocispec.Index{
		Versioned: specsVersioned,
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{
			MediaType:   ocispec.MediaTypeImageIndex,
			Digest:      digest.FromBytes(index),
			Size:        int64(len(index)),
			Annotations: map[string]string{ocispec.AnnotationRefName: ref},
		}},
	})
	ms := []member{{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {name: "index.json", data: top}, blobMember(index)}
	ms = append(ms, amd64.members()...)
	ms = append(ms, blobMember(arm64.config), blobMember(arm64.manifest))
	return writeTar(t, ms...), amd64, arm64, index
}

// verifyStore checks that every blob of st has the content its digest says.
func verifyStore(t testing.TB, st *Store) {
	t.Helper()
	err := st.Walk(func(b BlobInfo) error {
		f, _, err := st.Open(b.Digest)
		if err != nil {
			return err
		}
		defer f.Close()
		got, err := digest.Canonical.FromReader(f)
		if err != nil {
			return err
		}
		if got != b.Digest {
			t.Errorf("blob %s holds content of digest %s", b.Digest, got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
