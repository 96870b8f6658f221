package containerd

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"

	"github.com/drover-org/drover/api"
)

// RemoveImage deletes an image and, through containerd's garbage
// collector, the content and snapshots only it held. Containers made
// from it keep their snapshots.
func (d *Driver) RemoveImage(ctx context.Context, ref string) error {
	ctx = d.ctx(ctx)
	name, err := normalizeRef(ref)
	if err != nil {
		return err
	}
	err = d.client.ImageService().Delete(ctx, name, images.SynchronousDelete())
	if errdefs.IsNotFound(err) {
		return api.Errorf(api.ErrNotFound, "image %s is not on this node", name)
	}
	if err != nil {
		return fmt.Errorf("removing image %s: %w", name, err)
	}
	d.logger.Info("image removed", "image", name)
	return nil
}
