package containerd

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/client"
	ctdcontent "github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/content"
	"github.com/drover-org/drover/internal/runtime"
)

// ImportFromStore makes the image of rec, whose blobs are in st, an image
// of containerd, unpacked and ready to run: it copies the blobs that
// containerd's content store lacks (each verified against its digest by
// containerd), names the image as Import does and unpacks it for the
// driver's snapshotter. The containerd image points at rec's manifest (not
// at a multi-platform index, whose other platforms the node does not
// have). Importing again is cheap: present blobs are skipped.
func (d *Driver) ImportFromStore(ctx context.Context, st *content.Store, rec content.ImageRecord) (runtime.Image, error) {
	ctx = d.ctx(ctx)
	if err := rec.Check(); err != nil {
		return runtime.Image{}, err
	}
	name, err := normalizeRef(rec.Name)
	if err != nil {
		return runtime.Image{}, err
	}
	// Unpack would fail on another platform with a message about missing
	// content; say what is wrong instead.
	if rec.Platform.OS != "" && !platforms.Default().Match(rec.Platform) {
		return runtime.Image{}, fmt.Errorf("image %s is for %s, this node runs %s: %w",
			name, platforms.Format(rec.Platform), platforms.Format(platforms.DefaultSpec()), api.ErrInvalid)
	}

	// The lease keeps containerd's garbage collector off the blobs until
	// the image names them.
	ctx, done, err := d.client.WithLease(ctx)
	if err != nil {
		return runtime.Image{}, fmt.Errorf("image %s: %w", name, err)
	}
	defer done(context.WithoutCancel(ctx))

	start := time.Now()
	cs := d.client.ContentStore()
	var copied int64
	// Manifest last: nothing names a blob before the blob is there.
	blobs := append(append([]ocispec.Descriptor{rec.Config}, rec.Layers...), rec.Manifest)
	for _, desc := range blobs {
		n, err := copyBlob(ctx, cs, st, desc)
		if err != nil {
			return runtime.Image{}, fmt.Errorf("image %s: %w", name, err)
		}
		copied += n
	}
	// The manifest's labels tell containerd's garbage collector that it
	// holds its config and layers, as Import labels what it imports.
	target := ocispec.Descriptor{MediaType: rec.Manifest.MediaType, Digest: rec.Manifest.Digest, Size: rec.Manifest.Size}
	if err := images.Walk(ctx, images.SetChildrenLabels(cs, images.ChildrenHandler(cs)), target); err != nil {
		return runtime.Image{}, fmt.Errorf("image %s: labelling its content: %w", name, err)
	}

	is := d.client.ImageService()
	im := images.Image{Name: name, Target: target}
	got, err := is.Update(ctx, im, "target")
	if errdefs.IsNotFound(err) {
		got, err = is.Create(ctx, im)
		if errdefs.IsAlreadyExists(err) { // made meanwhile by a concurrent import
			got, err = is.Update(ctx, im, "target")
		}
	}
	if err != nil {
		return runtime.Image{}, fmt.Errorf("image %s: %w", name, err)
	}
	img := client.NewImage(d.client, got)
	if err := img.Unpack(ctx, d.cfg.Snapshotter); err != nil {
		return runtime.Image{}, fmt.Errorf("unpacking image %s: %w", name, err)
	}
	d.logger.Info("imported image from the content store", "image", name, "digest", target.Digest,
		"copied_bytes", copied, "took", time.Since(start).Round(time.Millisecond))
	return d.toImage(ctx, img), nil
}

// copyBlob writes one blob of st into containerd's content store unless it
// is there, and returns how many bytes it wrote.
func copyBlob(ctx context.Context, cs ctdcontent.Store, st *content.Store, desc ocispec.Descriptor) (int64, error) {
	if _, err := cs.Info(ctx, desc.Digest); err == nil {
		return 0, nil
	} else if !errdefs.IsNotFound(err) {
		return 0, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	f, size, err := st.Open(desc.Digest)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if size != desc.Size {
		return 0, fmt.Errorf("blob %s: the content store has %d bytes, the record says %d: %w", desc.Digest, size, desc.Size, api.ErrInvalid)
	}
	// The ref names the ingest, so that an interrupted copy resumes (the
	// file is seekable) rather than starting over; WriteBlob checks size
	// and digest on commit.
	ref := "drover-content-" + desc.Digest.String()
	if err := ctdcontent.WriteBlob(ctx, cs, ref, f, desc); err != nil {
		return 0, fmt.Errorf("writing blob %s into containerd: %w", desc.Digest, err)
	}
	return desc.Size, nil
}

// HasImage reports whether containerd has the image and all the content
// it needs on this platform (an image whose blobs were collected does not
// count).
func (d *Driver) HasImage(ctx context.Context, ref string) (bool, error) {
	ctx = d.ctx(ctx)
	name, err := normalizeRef(ref)
	if err != nil {
		return false, err
	}
	im, err := d.client.ImageService().Get(ctx, name)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("image %s: %w", name, err)
	}
	ok, _, _, _, err := images.Check(ctx, d.client.ContentStore(), im.Target, platforms.Default())
	if err != nil {
		return false, fmt.Errorf("image %s: checking its content: %w", name, err)
	}
	return ok, nil
}
