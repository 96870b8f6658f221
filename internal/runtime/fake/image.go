package fake

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/content"
	"github.com/drover-org/drover/internal/runtime"
)

// normalizeRef gives the full name an image is kept under, the same
// everywhere: "busybox" -> "docker.io/library/busybox:latest".
var normalizeRef = content.NormalizeName

// newImage makes the record of an image; its digest is made from its name
// so that the same image always has the same one.
func (r *Runtime) newImage(name string) runtime.Image {
	sum := sha256.Sum256([]byte(name))
	return runtime.Image{Name: name, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: 1 << 20, CreatedAt: r.now()}
}

// EnsureImage makes ref present, "pulling" it by the script when missing.
func (d *Driver) EnsureImage(ctx context.Context, ref string) error {
	if err := d.enter("EnsureImage"); err != nil {
		return err
	}
	d.rt.mu.Unlock()
	_, err := d.ensure(ctx, ref)
	return err
}

// ensure is EnsureImage without the call count; it returns the image's
// normalized name.
func (d *Driver) ensure(ctx context.Context, ref string) (string, error) {
	name, err := normalizeRef(ref)
	if err != nil {
		return "", err
	}
	r := d.rt
	r.mu.Lock()
	_, ok := r.images[name]
	b := r.script.behavior(ref, name)
	offline := r.script.Offline
	r.mu.Unlock()
	if ok {
		return name, nil
	}
	if offline || b.PullError != "" {
		cause := b.PullError
		if cause == "" {
			cause = "no registry is reachable"
		}
		return "", fmt.Errorf("image %s is not on this node and could not be pulled: %s: %w", ref, cause, runtime.ErrNotFound)
	}
	if err := sleep(ctx, b.PullLatency); err != nil {
		return "", fmt.Errorf("pulling image %s: %w", ref, err)
	}
	r.mu.Lock()
	if _, ok := r.images[name]; !ok {
		r.images[name] = r.newImage(name)
	}
	r.mu.Unlock()
	return name, nil
}

// Annotations that name an image in an OCI archive's index.json.
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// Import reads an OCI image-layout archive or a docker-save archive and
// makes the images its index.json or manifest.json names present. The
// layers are not looked at: a fake container runs nothing.
func (d *Driver) Import(ctx context.Context, rd io.Reader) ([]runtime.Image, error) {
	if err := d.enter("Import"); err != nil {
		return nil, err
	}
	d.rt.mu.Unlock()
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(rd, h))
	var names []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("importing image archive (an OCI image layout or `docker save` tar): %w", err)
		}
		switch path.Clean(hdr.Name) {
		case "index.json":
			var idx struct {
				Manifests []struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"manifests"`
			}
			if err := json.NewDecoder(tr).Decode(&idx); err != nil {
				return nil, fmt.Errorf("image archive: index.json: %w", err)
			}
			for _, m := range idx.Manifests {
				if n := m.Annotations[annotationImageName]; n != "" {
					names = append(names, n)
				} else if n := m.Annotations[annotationRefName]; strings.ContainsAny(n, "/:@") {
					// A bare tag ("latest") names no repository.
					names = append(names, n)
				}
			}
		case "manifest.json":
			var man []struct{ RepoTags []string }
			if err := json.NewDecoder(tr).Decode(&man); err != nil {
				return nil, fmt.Errorf("image archive: manifest.json: %w", err)
			}
			for _, m := range man {
				names = append(names, m.RepoTags...)
			}
		}
	}
	_, _ = io.Copy(h, rd)
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))

	r := d.rt
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []runtime.Image
	for _, n := range names {
		name, err := normalizeRef(n)
		if err != nil {
			return nil, fmt.Errorf("imported image: %w", err)
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		img := r.newImage(name)
		img.Digest = digest
		r.images[name] = img
		out = append(out, img)
	}
	if len(out) == 0 {
		return nil, errors.New("the image archive names no image: an OCI archive needs an " + annotationImageName +
			" or " + annotationRefName + " annotation with a full reference in index.json, a docker-save archive RepoTags in manifest.json")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// List returns the runtime's images by name.
func (d *Driver) List(ctx context.Context) ([]runtime.Image, error) {
	if err := d.enter("List"); err != nil {
		return nil, err
	}
	r := d.rt
	out := make([]runtime.Image, 0, len(r.images))
	for _, img := range r.images {
		out = append(out, img)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ImageHealthcheck is the script's Healthcheck for the image.
func (d *Driver) ImageHealthcheck(ctx context.Context, ref string) (*api.Healthcheck, error) {
	name, err := normalizeRef(ref)
	if err != nil {
		return nil, err
	}
	if err := d.enter("ImageHealthcheck"); err != nil {
		return nil, err
	}
	r := d.rt
	defer r.mu.Unlock()
	if _, ok := r.images[name]; !ok {
		return nil, fmt.Errorf("image %s: %w", ref, runtime.ErrNotFound)
	}
	b := r.script.behavior(ref, name)
	if b.Healthcheck == nil {
		return nil, nil
	}
	h := *b.Healthcheck
	h.Test = append([]string(nil), h.Test...)
	return &h, nil
}

// SeedVolume copies nothing: a fake image has no files. The image must be
// present, as it must be for a real one.
func (d *Driver) SeedVolume(ctx context.Context, ref, p, dir string) error {
	name, err := normalizeRef(ref)
	if err != nil {
		return err
	}
	if err := d.enter("SeedVolume"); err != nil {
		return err
	}
	defer d.rt.mu.Unlock()
	if _, ok := d.rt.images[name]; !ok {
		return fmt.Errorf("image %s: %w", ref, runtime.ErrNotFound)
	}
	return nil
}
