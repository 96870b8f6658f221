package content

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-org/drover/api"
)

// Media types of Docker's image format, which `docker save` archives and
// many registries' images still use.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// annotationImageName is containerd's annotation for an image's full name.
const annotationImageName = "io.containerd.image.name"

// maxIndexDepth bounds indexes nested in indexes.
const maxIndexDepth = 4

// ociImages resolves the images index.json names.
func (a *archive) ociImages(platform ocispec.Platform) ([]ImageRecord, error) {
	var layout ocispec.ImageLayout
	if err := json.Unmarshal(a.json[ociLayoutFile], &layout); err != nil {
		return nil, fmt.Errorf("image archive: %s: %v: %w", ociLayoutFile, err, api.ErrInvalid)
	}
	if layout.Version != ocispec.ImageLayoutVersion {
		return nil, fmt.Errorf("image archive: OCI image layout version %q, only %s is supported: %w",
			layout.Version, ocispec.ImageLayoutVersion, api.ErrInvalid)
	}
	data, ok := a.json[ociIndexFile]
	if !ok {
		return nil, fmt.Errorf("image archive: the OCI image layout lacks %s: %w", ociIndexFile, api.ErrInvalid)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("image archive: %s: %v: %w", ociIndexFile, err, api.ErrInvalid)
	}
	if len(idx.Manifests) > maxLayers {
		return nil, fmt.Errorf("image archive: %s lists %d manifests, more than %d: %w", ociIndexFile, len(idx.Manifests), maxLayers, api.ErrInvalid)
	}
	matcher := platforms.Only(platform)
	var recs []ImageRecord
	for i, m := range idx.Manifests {
		name, err := annotatedName(m.Annotations)
		if err != nil {
			return nil, fmt.Errorf("image archive: %s manifest %d: %w", ociIndexFile, i, err)
		}
		if name == "" {
			continue // containerd's Import makes no image of it either
		}
		rec, err := a.resolve(m, matcher, 0)
		if err != nil {
			return nil, fmt.Errorf("image archive: image %s: %w", name, err)
		}
		rec.Name = name
		recs = append(recs, rec)
	}
	return recs, nil
}

// annotatedName names an image as containerd's Import and the driver's
// normalization do: io.containerd.image.name as written (it must be
// valid), else org.opencontainers.image.ref.name if it is a full reference
// (a bare tag, which the OCI spec allows, names no repository).
func annotatedName(ann map[string]string) (string, error) {
	if n := ann[annotationImageName]; n != "" {
		return NormalizeName(n)
	}
	n := ann[ocispec.AnnotationRefName]
	if n == "" || !strings.ContainsAny(n, "/:@") {
		return "", nil
	}
	name, err := NormalizeName(n)
	if err != nil {
		return "", nil
	}
	return name, nil
}

// plain keeps what a record needs of a descriptor; annotations, URLs and
// platforms of the archive stay out of it.
func plain(d ocispec.Descriptor, mediaType string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: d.Digest, Size: d.Size}
}

// blob checks that a descriptor's blob is in the store with its size.
func (a *archive) blob(d ocispec.Descriptor, what string) error {
	if err := checkDescriptor(d, what); err != nil {
		return err
	}
	if a.checks++; a.checks > maxBlobChecks {
		return fmt.Errorf("image archive: its manifests name more than %d blobs: %w", maxBlobChecks, api.ErrInvalid)
	}
	info, err := a.st.Info(d.Digest)
	if errors.Is(err, api.ErrNotFound) {
		return fmt.Errorf("%s: the archive lacks blob %s: %w", what, d.Digest, api.ErrInvalid)
	}
	if err != nil {
		return err
	}
	if info.Size != d.Size {
		return fmt.Errorf("%s: blob %s has %d bytes, its descriptor says %d: %w", what, d.Digest, info.Size, d.Size, api.ErrInvalid)
	}
	return nil
}

// document reads a JSON blob that a descriptor names.
func (a *archive) document(d ocispec.Descriptor, what string) ([]byte, error) {
	if err := a.blob(d, what); err != nil {
		return nil, err
	}
	if d.Size > maxJSONSize {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a JSON document may have: %w", what, d.Size, maxJSONSize, api.ErrInvalid)
	}
	if a.jsonRead += d.Size; a.jsonRead > maxJSONReadings {
		return nil, fmt.Errorf("image archive: its manifests and configs add up to more than %d bytes: %w", maxJSONReadings, api.ErrInvalid)
	}
	return a.st.readBlob(d.Digest, maxJSONSize)
}

// resolve follows a descriptor of index.json to the manifest to keep.
func (a *archive) resolve(desc ocispec.Descriptor, matcher platforms.MatchComparer, depth int) (ImageRecord, error) {
	what := "manifest " + string(desc.Digest)
	b, err := a.document(desc, what)
	if err != nil {
		return ImageRecord{}, err
	}
	var probe struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return ImageRecord{}, fmt.Errorf("%s: %v: %w", what, err, api.ErrInvalid)
	}
	mt := desc.MediaType
	switch {
	case mt == "":
		mt = probe.MediaType
	case probe.MediaType != "" && probe.MediaType != mt:
		return ImageRecord{}, fmt.Errorf("%s: its descriptor says %s, the document %s: %w", what, mt, probe.MediaType, api.ErrInvalid)
	}
	if mt == "" {
		switch {
		case probe.Manifests != nil:
			mt = ocispec.MediaTypeImageIndex
		case probe.Config != nil:
			mt = ocispec.MediaTypeImageManifest
		}
	}

	switch mt {
	case ocispec.MediaTypeImageIndex, mediaTypeDockerManifestList:
		if depth >= maxIndexDepth {
			return ImageRecord{}, fmt.Errorf("%s: indexes nested more than %d deep: %w", what, maxIndexDepth, api.ErrInvalid)
		}
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return ImageRecord{}, fmt.Errorf("index %s: %v: %w", desc.Digest, err, api.ErrInvalid)
		}
		return a.choose(plain(desc, mt), idx, matcher, depth)
	case ocispec.MediaTypeImageManifest, mediaTypeDockerManifest:
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return ImageRecord{}, fmt.Errorf("%s: %v: %w", what, err, api.ErrInvalid)
		}
		return a.manifestRecord(plain(desc, mt), m, desc.Platform)
	default:
		return ImageRecord{}, fmt.Errorf("%s: media type %q is neither an image manifest nor an index: %w", what, mt, api.ErrInvalid)
	}
}

// choose picks the manifest of an index that best matches the platform,
// as containerd does: descriptors without a platform come last and are
// judged by their config.
func (a *archive) choose(desc ocispec.Descriptor, idx ocispec.Index, matcher platforms.MatchComparer, depth int) (ImageRecord, error) {
	if len(idx.Manifests) > maxLayers {
		return ImageRecord{}, fmt.Errorf("index %s: %d manifests, more than %d: %w", desc.Digest, len(idx.Manifests), maxLayers, api.ErrInvalid)
	}
	var cands []ocispec.Descriptor
	var offered []string
	for _, m := range idx.Manifests {
		if m.Platform == nil {
			cands = append(cands, m)
			continue
		}
		offered = append(offered, platforms.Format(*m.Platform))
		if matcher.Match(*m.Platform) {
			cands = append(cands, m)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		pi, pj := cands[i].Platform, cands[j].Platform
		if pi == nil || pj == nil {
			return pi != nil && pj == nil
		}
		return matcher.Less(*pi, *pj)
	})
	for _, c := range cands {
		rec, err := a.resolve(c, matcher, depth+1)
		if err != nil {
			return ImageRecord{}, err
		}
		if c.Platform == nil && !matcher.Match(rec.Platform) {
			continue
		}
		// The outermost index is the one the image's name points to.
		rec.Index = &desc
		return rec, nil
	}
	if len(offered) > 16 {
		offered = append(offered[:16], "...")
	}
	return ImageRecord{}, fmt.Errorf("index %s has no manifest for this platform (it has %s): %w",
		desc.Digest, strings.Join(offered, ", "), api.ErrInvalid)
}

// imageConfig is what a record takes from an image config.
type imageConfig struct {
	Architecture string     `json:"architecture"`
	OS           string     `json:"os"`
	Variant      string     `json:"variant"`
	Created      *time.Time `json:"created"`
	RootFS       struct {
		DiffIDs []digest.Digest `json:"diff_ids"`
	} `json:"rootfs"`
}

// manifestRecord checks a manifest's config and layers and makes the
// record of it (without a name). platform, if known from an index, wins
// over the config's.
func (a *archive) manifestRecord(desc ocispec.Descriptor, m ocispec.Manifest, platform *ocispec.Platform) (ImageRecord, error) {
	what := "manifest " + string(desc.Digest)
	if len(m.Layers) > maxLayers {
		return ImageRecord{}, fmt.Errorf("%s: %d layers, more than %d: %w", what, len(m.Layers), maxLayers, api.ErrInvalid)
	}
	b, err := a.document(m.Config, what+" config")
	if err != nil {
		return ImageRecord{}, err
	}
	var cfg imageConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return ImageRecord{}, fmt.Errorf("%s: config %s: %v: %w", what, m.Config.Digest, err, api.ErrInvalid)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return ImageRecord{}, fmt.Errorf("%s: %d layers, but its config lists %d: %w", what, len(m.Layers), len(cfg.RootFS.DiffIDs), api.ErrInvalid)
	}
	rec := ImageRecord{
		Manifest: desc,
		Config:   plain(m.Config, m.Config.MediaType),
		Layers:   make([]ocispec.Descriptor, len(m.Layers)),
	}
	for i, l := range m.Layers {
		if err := a.blob(l, fmt.Sprintf("%s layer %d", what, i)); err != nil {
			return ImageRecord{}, err
		}
		rec.Layers[i] = plain(l, l.MediaType)
	}
	if platform != nil {
		rec.Platform = platforms.Normalize(*platform)
	} else {
		rec.Platform = platforms.Normalize(ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})
	}
	if cfg.Created != nil {
		rec.Created = cfg.Created.UTC()
	}
	return rec, nil
}

// dockerImages resolves the images of a docker-save manifest.json. Docker's
// archive has no manifest blobs, so one is made for each image exactly as
// containerd's importer makes it: the same archive gives the same image
// digest by either path.
func (a *archive) dockerImages() ([]ImageRecord, error) {
	var entries []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(a.json[dockerManifestFile], &entries); err != nil {
		return nil, fmt.Errorf("image archive: %s: %v: %w", dockerManifestFile, err, api.ErrInvalid)
	}
	if len(entries) > maxLayers {
		return nil, fmt.Errorf("image archive: %s has %d entries, more than %d: %w", dockerManifestFile, len(entries), maxLayers, api.ErrInvalid)
	}
	var recs []ImageRecord
	for i, e := range entries {
		if len(e.RepoTags) == 0 {
			continue
		}
		if len(e.Layers) > maxLayers {
			return nil, fmt.Errorf("image archive: %s entry %d: %d layers, more than %d: %w", dockerManifestFile, i, len(e.Layers), maxLayers, api.ErrInvalid)
		}
		config, err := a.member(e.Config)
		if err != nil {
			return nil, err
		}
		config.MediaType = mediaTypeDockerConfig
		layers := make([]ocispec.Descriptor, len(e.Layers))
		for j, p := range e.Layers {
			if layers[j], err = a.member(p); err != nil {
				return nil, err
			}
			if layers[j].MediaType, err = a.layerMediaType(layers[j].Digest); err != nil {
				return nil, err
			}
		}
		// Field order and types as containerd marshals its manifest.
		doc, err := json.Marshal(struct {
			SchemaVersion int                  `json:"schemaVersion"`
			MediaType     string               `json:"mediaType"`
			Config        ocispec.Descriptor   `json:"config"`
			Layers        []ocispec.Descriptor `json:"layers"`
		}{2, mediaTypeDockerManifest, config, layers})
		if err != nil {
			return nil, err
		}
		desc := ocispec.Descriptor{MediaType: mediaTypeDockerManifest, Digest: digest.FromBytes(doc), Size: int64(len(doc))}
		if err := a.st.Put(desc.Digest, desc.Size, bytes.NewReader(doc)); err != nil {
			return nil, err
		}
		rec, err := a.manifestRecord(desc, ocispec.Manifest{Config: config, Layers: layers}, nil)
		if err != nil {
			return nil, fmt.Errorf("image archive: %s entry %d: %w", dockerManifestFile, i, err)
		}
		for _, tag := range e.RepoTags {
			name, err := NormalizeName(tag)
			if err != nil {
				return nil, fmt.Errorf("image archive: %s entry %d RepoTags: %w", dockerManifestFile, i, err)
			}
			r := rec.clone()
			r.Name = name
			recs = append(recs, r)
		}
	}
	return recs, nil
}

// layerMediaType tells a compressed layer from a plain tar by its first
// bytes, as containerd's importer does (which calls zstd "gzip" too).
func (a *archive) layerMediaType(d digest.Digest) (string, error) {
	f, _, err := a.st.Open(d)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 8)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", fmt.Errorf("layer %s: %w", d, err)
	}
	head = head[:n]
	gzip := bytes.HasPrefix(head, []byte{0x1f, 0x8b, 0x08})
	zstd := bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}) ||
		(len(head) >= 8 && binary.LittleEndian.Uint32(head)&0xfffffff0 == 0x184d2a50)
	if gzip || zstd {
		return mediaTypeDockerLayerGzip, nil
	}
	return mediaTypeDockerLayer, nil
}
