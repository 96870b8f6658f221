package content

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/imagebuild"
)

func readArchiveT(t *testing.T, st *Store, b []byte, platform ocispec.Platform) []ImageRecord {
	t.Helper()
	recs, err := ReadArchive(context.Background(), st, bytes.NewReader(b), platform)
	if err != nil {
		t.Fatalf("ReadArchive: %v", err)
	}
	return recs
}

// storedDigests lists the digests of the blobs in st.
func storedDigests(t *testing.T, st *Store) map[digest.Digest]bool {
	t.Helper()
	list, err := st.List()
	if err != nil {
		t.Fatal(err)
	}
	out := map[digest.Digest]bool{}
	for _, b := range list {
		out[b.Digest] = true
	}
	return out
}

func TestReadArchiveOCI(t *testing.T) {
	img := tinyImage(t, "oci")
	p := partsOf(t, img)
	raw := ociArchive(t, img, "busybox")
	for name, b := range map[string][]byte{"Plain": raw, "Gzip": gzipped(t, raw)} {
		t.Run(name, func(t *testing.T) {
			st := newStore(t)
			recs := readArchiveT(t, st, b, hostPlatform)
			if len(recs) != 1 {
				t.Fatalf("got %d records, want 1", len(recs))
			}
			rec := recs[0]
			if rec.Name != "docker.io/library/busybox:latest" {
				t.Errorf("name %q, want docker.io/library/busybox:latest", rec.Name)
			}
			if rec.Manifest.Digest != digest.FromBytes(p.manifest) || rec.Manifest.MediaType != ocispec.MediaTypeImageManifest {
				t.Errorf("manifest %+v, want %s", rec.Manifest, digest.FromBytes(p.manifest))
			}
			if rec.Config.Digest != digest.FromBytes(p.config) {
				t.Errorf("config %s, want %s", rec.Config.Digest, digest.FromBytes(p.config))
			}
			if len(rec.Layers) != 1 || rec.Layers[0].Digest != digest.FromBytes(p.layers[0]) {
				t.Errorf("layers %+v", rec.Layers)
			}
			if rec.Platform.OS != "linux" || rec.Platform.Architecture != hostPlatform.Architecture {
				t.Errorf("platform %+v", rec.Platform)
			}
			if want := int64(len(p.manifest) + len(p.config) + len(p.layers[0])); rec.Size != want {
				t.Errorf("size %d, want %d", rec.Size, want)
			}
			if rec.Index != nil || !rec.Created.Equal(time.Unix(0, 0)) { // imagebuild's fixed epoch
				t.Errorf("index %v, created %v", rec.Index, rec.Created)
			}
			got, err := st.Image("busybox")
			if err != nil || got.Manifest.Digest != rec.Manifest.Digest {
				t.Errorf("Image(busybox) = %+v, %v", got, err)
			}
			// Exactly the image's blobs stay.
			if stored := storedDigests(t, st); len(stored) != 3 {
				t.Errorf("store holds %d blobs, want 3: %v", len(stored), stored)
			}
			verifyStore(t, st)
		})
	}
}

func TestReadArchiveNames(t *testing.T) {
	img := tinyImage(t, "names")
	for _, tc := range []struct{ ref, want string }{
		{"", imagebuild.DefaultRef},
		{"me/web:1.2", "docker.io/me/web:1.2"},
		{"localhost:5000/x/y:dev", "localhost:5000/x/y:dev"},
	} {
		recs := readArchiveT(t, newStore(t), ociArchive(t, img, tc.ref), hostPlatform)
		if len(recs) != 1 || recs[0].Name != tc.want {
			t.Errorf("OCI %q: got %+v, want %s", tc.ref, recs, tc.want)
		}
		recs = readArchiveT(t, newStore(t), dockerArchive(t, img, tc.ref), hostPlatform)
		if len(recs) != 1 || recs[0].Name != tc.want {
			t.Errorf("docker %q: got %+v, want %s", tc.ref, recs, tc.want)
		}
	}

	// Only org.opencontainers.image.ref.name, in its bare-tag form, names
	// nothing; in full form it names the image.
	p := partsOf(t, img)
	for _, tc := range []struct {
		ann  map[string]string
		want string
	}{
		{map[string]string{ocispec.AnnotationRefName: "latest"}, ""},
		{map[string]string{ocispec.AnnotationRefName: "example.com/a/b:2"}, "example.com/a/b:2"},
		{map[string]string{ocispec.AnnotationRefName: "latest", annotationImageName: "busybox:1"}, "docker.io/library/busybox:1"},
	} {
		d := p.desc(nil)
		d.Annotations = tc.ann
		b := writeTar(t, append(p.members(),
			member{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
			member{name: "index.json", data: mustJSON(t, ocispec.Index{Versioned: specsVersioned, Manifests: []ocispec.Descriptor{d}})})...)
		recs, err := ReadArchive(context.Background(), newStore(t), bytes.NewReader(b), hostPlatform)
		switch {
		case tc.want == "" && !errors.Is(err, api.ErrInvalid):
			t.Errorf("%v: got %+v, %v; want an error saying the archive names no image", tc.ann, recs, err)
		case tc.want != "" && (err != nil || len(recs) != 1 || recs[0].Name != tc.want):
			t.Errorf("%v: got %+v, %v; want %s", tc.ann, recs, err, tc.want)
		}
	}
}

func TestReadArchiveDocker(t *testing.T) {
	img := tinyImage(t, "docker")
	p := partsOf(t, img)
	st := newStore(t)
	recs := readArchiveT(t, st, gzipped(t, dockerArchive(t, img, "busybox:1")), hostPlatform)
	if len(recs) != 1 {
		t.Fatalf("got %d records", len(recs))
	}
	rec := recs[0]
	if rec.Name != "docker.io/library/busybox:1" {
		t.Errorf("name %q", rec.Name)
	}
	if rec.Manifest.MediaType != mediaTypeDockerManifest || rec.Config.MediaType != mediaTypeDockerConfig {
		t.Errorf("media types %s, %s", rec.Manifest.MediaType, rec.Config.MediaType)
	}
	if rec.Config.Digest != digest.FromBytes(p.config) {
		t.Errorf("config %s, want %s", rec.Config.Digest, digest.FromBytes(p.config))
	}
	if len(rec.Layers) != 1 || rec.Layers[0].MediaType != mediaTypeDockerLayerGzip || rec.Layers[0].Digest != digest.FromBytes(p.layers[0]) {
		t.Errorf("layers %+v", rec.Layers)
	}
	// The made-up manifest is a valid one, stored under its digest.
	b, err := st.readBlob(rec.Manifest.Digest, maxJSONSize)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil || m.SchemaVersion != 2 || m.Config.Digest != rec.Config.Digest || len(m.Layers) != 1 {
		t.Errorf("manifest %s: %v", b, err)
	}
	if want := `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"`; !strings.HasPrefix(string(b), want) {
		t.Errorf("manifest %s is not in containerd's form", b)
	}
	verifyStore(t, st)
}

// TestReadArchiveOldDocker reads the layout of docker save before Docker
// 25: members named by layer ID, plain tar layers, a repeated layer as a
// symlink to its first copy, and files that are not blobs.
func TestReadArchiveOldDocker(t *testing.T) {
	layer := writeTar(t, member{name: "hello.txt", data: []byte("hello")})
	diffID := digest.FromBytes(layer)
	config := mustJSON(t, map[string]any{
		"architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{diffID, diffID}},
	})
	manifest := mustJSON(t, []map[string]any{{
		"Config": "abc.json", "RepoTags": []string{"example.com/old:1", "old"},
		"Layers": []string{"l1/layer.tar", "l2/layer.tar"},
	}})
	st := newStore(t)
	recs := readArchiveT(t, st, writeTar(t,
		member{name: "l1/", typeflag: tar.TypeDir},
		member{name: "l1/VERSION", data: []byte("1.0")},
		member{name: "l1/json", data: []byte(`{"id":"l1"}`)},
		member{name: "l1/layer.tar", data: layer},
		member{name: "l2/layer.tar", typeflag: tar.TypeSymlink, linkname: "../l1/layer.tar"},
		member{name: "abc.json", data: config},
		member{name: "repositories", data: []byte(`{}`)},
		member{name: "manifest.json", data: manifest},
	), ocispec.Platform{OS: "linux", Architecture: "s390x"})
	if len(recs) != 2 || recs[0].Name != "docker.io/library/old:latest" || recs[1].Name != "example.com/old:1" {
		t.Fatalf("records %+v", recs)
	}
	rec := recs[0]
	if len(rec.Layers) != 2 || rec.Layers[0].Digest != diffID || rec.Layers[1].Digest != diffID || rec.Layers[0].MediaType != mediaTypeDockerLayer {
		t.Errorf("layers %+v", rec.Layers)
	}
	if rec.Platform.Architecture != "amd64" || rec.Created.Format("2006-01-02") != "2024-01-02" {
		t.Errorf("platform %+v, created %v", rec.Platform, rec.Created)
	}
	if n := len(rec.Blobs()); n != 3 {
		t.Errorf("Blobs() has %d entries, want 3 (the repeated layer once)", n)
	}
	// VERSION and json were ingested as blobs while their use was unknown;
	// they are gone now.
	if stored := storedDigests(t, st); len(stored) != 3 {
		t.Errorf("store holds %d blobs, want 3", len(stored))
	}
}

func TestReadArchiveMultiPlatform(t *testing.T) {
	img := tinyImage(t, "multi")
	b, amd64, arm64, index := multiPlatformArchive(t, img, "example.com/multi:1")
	for _, tc := range []struct {
		arch string
		want imageParts
	}{{"amd64", amd64}, {"arm64", arm64}} {
		t.Run(tc.arch, func(t *testing.T) {
			st := newStore(t)
			recs := readArchiveT(t, st, b, ocispec.Platform{OS: "linux", Architecture: tc.arch})
			if len(recs) != 1 {
				t.Fatalf("got %d records", len(recs))
			}
			rec := recs[0]
			if rec.Manifest.Digest != digest.FromBytes(tc.want.manifest) || rec.Platform.Architecture != tc.arch {
				t.Errorf("chose %s (%+v), want the %s manifest %s", rec.Manifest.Digest, rec.Platform, tc.arch, digest.FromBytes(tc.want.manifest))
			}
			if rec.Index == nil || rec.Index.Digest != digest.FromBytes(index) || rec.Index.MediaType != ocispec.MediaTypeImageIndex {
				t.Errorf("index %+v, want %s", rec.Index, digest.FromBytes(index))
			}
			stored := storedDigests(t, st)
			for _, b := range rec.Blobs() {
				if !stored[b.Digest] {
					t.Errorf("store lacks %s", b.Digest)
				}
			}
			if len(stored) != len(rec.Blobs()) {
				t.Errorf("store holds %d blobs, want the record's %d: the other platform's are garbage", len(stored), len(rec.Blobs()))
			}
		})
	}
	// The zero platform is this host's.
	if goruntime.GOARCH == "amd64" || goruntime.GOARCH == "arm64" {
		if recs := readArchiveT(t, newStore(t), b, ocispec.Platform{}); recs[0].Platform.Architecture != goruntime.GOARCH {
			t.Errorf("zero platform chose %+v, want this host's %s", recs[0].Platform, goruntime.GOARCH)
		}
	}
	_, err := ReadArchive(context.Background(), newStore(t), bytes.NewReader(b), ocispec.Platform{OS: "linux", Architecture: "riscv64"})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "linux/arm64") || !strings.Contains(err.Error(), "example.com/multi:1") {
		t.Errorf("no matching platform: %v; want ErrInvalid naming the image and the platforms it has", err)
	}
}

func TestReadArchiveBad(t *testing.T) {
	img := tinyImage(t, "bad")
	good := ociArchive(t, img, "busybox")
	p := partsOf(t, img)
	layout := member{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"1.0.0"}`)}
	named := func(d ocispec.Descriptor) ocispec.Descriptor {
		d.Annotations = map[string]string{annotationImageName: "busybox"}
		return d
	}
	indexOf := func(ds ...ocispec.Descriptor) member {
		return member{name: "index.json", data: mustJSON(t, ocispec.Index{Versioned: specsVersioned, Manifests: ds})}
	}
	badJSON := []byte(`{"schemaVersion":2,"config":`)
	hugeHeader := func() []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "index.json", Typeflag: tar.TypeReg, Size: 1 << 41, Mode: 0o644})
		return buf.Bytes() // the header only: the data never comes
	}
	hugeDesc := p.desc(nil)
	hugeDesc.Size = 1 << 50

	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"Empty", nil, "neither an OCI image layout"},
		{"Text", []byte("this is not a tar archive"), "truncated"},
		{"Truncated", good[:len(good)/2], "truncated"},
		{"TruncatedGzip", gzipped(t, good)[:300], "image archive"},
		{"GzipGarbage", append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte{7}, 100)...), "gzip"},
		{"MissingLayer", writeTar(t, layout, blobMember(p.config), blobMember(p.manifest), indexOf(named(p.desc(nil)))), "lacks blob " + digest.FromBytes(p.layers[0]).String()},
		{"MissingIndex", writeTar(t, append(p.members(), layout)...), "lacks index.json"},
		{"BadIndexJSON", writeTar(t, append(p.members(), layout, member{name: "index.json", data: []byte("{")})...), "index.json"},
		{"BadManifestJSON", writeTar(t, layout, blobMember(badJSON), indexOf(named(ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(badJSON), Size: int64(len(badJSON))}))), "unexpected end of JSON"},
		{"BadLayoutJSON", writeTar(t, append(p.members(), member{name: "oci-layout", data: []byte("[")}, indexOf(named(p.desc(nil))))...), "oci-layout"},
		{"LayoutVersion", writeTar(t, append(p.members(), member{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"9"}`)}, indexOf(named(p.desc(nil))))...), "version"},
		{"BadDigestName", writeTar(t, member{name: "blobs/sha256/xyz", data: []byte("x")}), "not a valid digest"},
		{"DigestMismatch", writeTar(t, member{name: "blobs/sha256/" + digest.FromString("a").Encoded(), data: []byte("b")}),
			digest.FromString("b").String()},
		{"SizeMismatch", writeTar(t, append(p.members(), layout, indexOf(named(func() ocispec.Descriptor {
			d := p.desc(nil)
			d.Size++
			return d
		}())))...), "descriptor says"},
		{"HugeDescriptor", writeTar(t, append(p.members(), layout, indexOf(named(hugeDesc)))...), "out of range"},
		{"HugeMember", hugeHeader(), "out of range"},
		{"Sparse", sparseArchive(), "sparse file"},
		{"DotDot", writeTar(t, member{name: "../evil", data: []byte("x")}), "leaves the archive"},
		{"Absolute", writeTar(t, member{name: "/etc/passwd", data: []byte("x")}), "leaves the archive"},
		{"SymlinkOut", writeTar(t, member{name: "a/link", typeflag: tar.TypeSymlink, linkname: "../../../etc/shadow"}), "outside the archive"},
		{"NoName", writeTar(t, append(p.members(), layout, indexOf(p.desc(nil)))...), "names no image"},
		{"BadName", writeTar(t, append(p.members(), layout, indexOf(func() ocispec.Descriptor {
			d := p.desc(nil)
			d.Annotations = map[string]string{annotationImageName: "Not/Valid"}
			return d
		}()))...), "not a valid image reference"},
		{"DockerMissingLayer", writeTar(t, blobMember(p.config), member{name: "manifest.json", data: mustJSON(t, []map[string]any{{
			"Config": "blobs/sha256/" + digest.FromBytes(p.config).Encoded(), "RepoTags": []string{"x:1"}, "Layers": []string{"nope/layer.tar"}}})}),
			`"nope/layer.tar", which the archive lacks`},
		{"DockerBadJSON", writeTar(t, member{name: "manifest.json", data: []byte(`{"Config":1}`)}), "manifest.json"},
		{"DockerBadTag", writeTar(t, append(p.members(), member{name: "manifest.json", data: mustJSON(t, []map[string]any{{
			"Config": "blobs/sha256/" + digest.FromBytes(p.config).Encoded(), "RepoTags": []string{"UPPER:1"},
			"Layers": []string{"blobs/sha256/" + digest.FromBytes(p.layers[0]).Encoded()}}})})...), "not a valid image reference"},
		{"LayerCount", writeTar(t, append(p.members(), member{name: "manifest.json", data: mustJSON(t, []map[string]any{{
			"Config": "blobs/sha256/" + digest.FromBytes(p.config).Encoded(), "RepoTags": []string{"x:1"}}})})...), "config lists 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore(t)
			recs, err := ReadArchive(context.Background(), st, bytes.NewReader(tc.in), hostPlatform)
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %+v, %v; want ErrInvalid containing %q", recs, err, tc.want)
			}
			t.Log(err)
			// Nothing of a refused archive stays.
			if imgs := st.Images(); len(imgs) != 0 {
				t.Errorf("store has images %+v", imgs)
			}
			if stored := storedDigests(t, st); len(stored) != 0 {
				t.Errorf("store keeps %d blobs", len(stored))
			}
			for _, sub := range []string{"tmp", "ingest"} {
				if entries, _ := os.ReadDir(filepath.Join(st.Dir(), sub)); len(entries) != 0 {
					t.Errorf("%s holds %d entries", sub, len(entries))
				}
			}
		})
	}
}

type failingReader struct {
	r   io.Reader
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// TestReadArchiveReaderError: a failing source (a broken upload) is not
// bad input; its error comes back as it is.
func TestReadArchiveReaderError(t *testing.T) {
	good := ociArchive(t, tinyImage(t, "err"), "busybox")
	boom := errors.New("connection reset")
	for _, n := range []int{0, 700, len(good) / 2, len(good) - 10} {
		_, err := ReadArchive(context.Background(), newStore(t), &failingReader{r: bytes.NewReader(good), n: n, err: boom}, hostPlatform)
		if !errors.Is(err, boom) || errors.Is(err, api.ErrInvalid) {
			t.Errorf("after %d bytes: %v; want the reader's error, not ErrInvalid", n, err)
		}
	}
}

// TestReadArchiveConcurrent loads archives that share blobs into one store
// at once.
func TestReadArchiveConcurrent(t *testing.T) {
	st := newStore(t)
	img := tinyImage(t, "concurrent")
	archives := [][]byte{ociArchive(t, img, "a:1"), dockerArchive(t, img, "b:1"), ociArchive(t, img, "c:1"), gzipped(t, ociArchive(t, img, "a:1"))}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := ReadArchive(context.Background(), st, bytes.NewReader(archives[i%len(archives)]), hostPlatform); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(st.Images()); n != 3 {
		t.Errorf("%d images, want 3", n)
	}
	for _, rec := range st.Images() {
		for _, b := range rec.Blobs() {
			if !st.Has(b.Digest) {
				t.Errorf("image %s: blob %s missing", rec.Name, b.Digest)
			}
		}
	}
	verifyStore(t, st)
}

func FuzzReadArchive(f *testing.F) {
	img := tinyImage(f, "fuzz")
	oci := ociArchive(f, img, "busybox")
	f.Add(oci)
	f.Add(gzipped(f, oci))
	f.Add(dockerArchive(f, img, "me/web:1"))
	multi, _, _, _ := multiPlatformArchive(f, img, "example.com/multi:1")
	f.Add(multi)
	f.Add(writeTar(f, member{name: "manifest.json", data: []byte(`[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l/layer.tar","m/layer.tar"]}]`)},
		member{name: "c.json", data: []byte(`{"os":"linux","rootfs":{"diff_ids":["sha256:` + strings.Repeat("0", 64) + `","x"]}}`)},
		member{name: "l/layer.tar", data: []byte("layer")},
		member{name: "m/layer.tar", typeflag: tar.TypeSymlink, linkname: "../l/layer.tar"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := NewStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		st.noSync = true
		recs, err := ReadArchive(context.Background(), st, bytes.NewReader(data), hostPlatform)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error not wrapping ErrInvalid: %v", err)
			}
			if len(st.Images()) != 0 || len(storedDigests(t, st)) != 0 {
				t.Fatalf("a refused archive left content behind: %v", err)
			}
			return
		}
		if len(recs) == 0 {
			t.Fatal("success without records")
		}
		for _, rec := range recs {
			if err := rec.Check(); err != nil {
				t.Fatalf("record %+v: %v", rec, err)
			}
			for _, b := range rec.Blobs() {
				if info, err := st.Info(b.Digest); err != nil || info.Size != b.Size {
					t.Fatalf("record %s: blob %s: %+v, %v", rec.Name, b.Digest, info, err)
				}
			}
		}
		verifyStore(t, st)
	})
}

// sparseArchive is a tar whose one member, of a few bytes, claims a
// terabyte of holes through PAX sparse records. Go's tar writer does not
// write those, so the blocks are made by hand.
func sparseArchive() []byte {
	block := func(name string, typeflag byte, size int) []byte {
		b := make([]byte, 512)
		copy(b[0:], name)
		copy(b[100:], "0000644\x00")
		copy(b[108:], "0000000\x00")
		copy(b[116:], "0000000\x00")
		copy(b[124:], fmt.Sprintf("%011o\x00", size))
		copy(b[136:], "00000000000\x00")
		b[156] = typeflag
		copy(b[257:], "ustar\x0000")
		copy(b[148:], "        ")
		sum := 0
		for _, c := range b {
			sum += int(c)
		}
		copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
		return b
	}
	record := func(k, v string) string {
		s := " " + k + "=" + v + "\n"
		for n := len(s); ; {
			r := strconv.Itoa(n) + s
			if len(r) == n {
				return r
			}
			n = len(r)
		}
	}
	pad := func(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }
	pax := record("GNU.sparse.major", "1") + record("GNU.sparse.minor", "0") +
		record("GNU.sparse.name", "index.json") + record("GNU.sparse.realsize", "1099511627776")
	var out []byte
	out = append(out, block("PaxHeaders/index.json", tar.TypeXHeader, len(pax))...)
	out = append(out, pad([]byte(pax))...)
	out = append(out, block("index.json", tar.TypeReg, 512)...)
	out = append(out, pad([]byte("1\n1099511627776\n0\n"))...)
	return append(out, make([]byte, 1024)...)
}
