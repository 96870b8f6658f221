package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/platforms"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/content"
	"github.com/drover-org/drover/internal/imagebuild"
	"github.com/drover-org/drover/internal/runtime"
)

// TestImportFromStore loads archives into a content store, imports the
// images from there into a containerd namespace that has never seen them,
// and runs a container of one.
func TestImportFromStore(t *testing.T) {
	ns := fmt.Sprintf("contentimport-%d", os.Getpid())
	d := openShared(t, Config{Namespace: ns})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	img, err := imagebuild.Build(imagebuild.Options{
		Files: map[string]imagebuild.File{"/hello.txt": {Data: []byte("from the content store\n")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var oci, docker bytes.Buffer
	if err := imagebuild.WriteOCIArchive(&oci, img, "drover.local/contentimport:oci"); err != nil {
		t.Fatal(err)
	}
	if err := imagebuild.WriteDockerArchive(&docker, img, "contentimport:docker"); err != nil {
		t.Fatal(err)
	}
	dockerBytes := bytes.Clone(docker.Bytes())
	st, err := content.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	load := func(b *bytes.Buffer) content.ImageRecord {
		recs, err := content.ReadArchive(ctx, st, b, platforms.DefaultSpec())
		if err != nil || len(recs) != 1 {
			t.Fatalf("ReadArchive: %+v, %v", recs, err)
		}
		return recs[0]
	}
	rec := load(&oci)

	if has, err := d.HasImage(ctx, rec.Name); err != nil || has {
		t.Fatalf("HasImage before the import: %v, %v", has, err)
	}
	got, err := d.ImportFromStore(ctx, st, rec)
	if err != nil {
		t.Fatalf("ImportFromStore: %v", err)
	}
	if got.Name != "drover.local/contentimport:oci" || got.Digest != rec.Manifest.Digest.String() || got.Size <= 0 {
		t.Errorf("ImportFromStore gave %+v, want %s at %s", got, rec.Name, rec.Manifest.Digest)
	}
	if has, err := d.HasImage(ctx, "drover.local/contentimport:oci"); err != nil || !has {
		t.Errorf("HasImage after the import: %v, %v", has, err)
	}
	list, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(list, func(im runtime.Image) bool { return im.Name == rec.Name }) {
		t.Errorf("List lacks %s: %+v", rec.Name, list)
	}
	// containerd's garbage collector must see that the manifest holds the
	// rest.
	cs := d.client.ContentStore()
	info, err := cs.Info(namespaces.WithNamespace(ctx, ns), rec.Manifest.Digest)
	if err != nil || info.Labels["containerd.io/gc.ref.content.config"] != rec.Config.Digest.String() ||
		info.Labels["containerd.io/gc.ref.content.l.0"] != rec.Layers[0].Digest.String() {
		t.Errorf("manifest labels %v, %v", info.Labels, err)
	}

	id := fmt.Sprintf("contentimport-%d", os.Getpid())
	t.Cleanup(func() { d.Destroy(context.Background(), id) })
	logPath := filepath.Join(t.TempDir(), "c.log")
	if _, err := d.Start(ctx, runtime.ContainerSpec{
		ID: id, Image: "drover.local/contentimport:oci", LogPath: logPath,
		Command: []string{"cat", "/hello.txt"},
	}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ch, err := d.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if es := <-ch; es.Code != 0 || es.Err != nil {
		t.Errorf("container exited with %+v", es)
	}
	waitFor(t, func() bool {
		b, _ := os.ReadFile(logPath)
		return bytes.Contains(b, []byte("from the content store"))
	}, "the container's output")

	// Again: everything is there already.
	if _, err := d.ImportFromStore(ctx, st, rec); err != nil {
		t.Errorf("second ImportFromStore: %v", err)
	}

	// A docker archive gives the image the digest that Import gives it.
	drec := load(&docker)
	dgot, err := d.ImportFromStore(ctx, st, drec)
	if err != nil {
		t.Fatalf("ImportFromStore of the docker archive's image: %v", err)
	}
	other := openShared(t, Config{Namespace: ns + "-archive"})
	imported, err := other.Import(ctx, bytes.NewReader(dockerBytes))
	if err != nil {
		t.Fatal(err)
	}
	if len(imported) != 1 || imported[0].Name != dgot.Name || imported[0].Digest != dgot.Digest {
		t.Errorf("Import gave %+v, ImportFromStore %+v: want the same name and digest", imported, dgot)
	}

	// An image of another platform is refused before any copying.
	foreign := rec
	foreign.Platform = platforms.MustParse("linux/s390x")
	if platforms.DefaultSpec().Architecture == "s390x" {
		foreign.Platform = platforms.MustParse("linux/arm64")
	}
	if _, err := d.ImportFromStore(ctx, st, foreign); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("ImportFromStore of a foreign image: %v, want ErrInvalid", err)
	}
	// A record whose blobs neither the store nor containerd has fails,
	// naming the blob.
	empty, err := content.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fresh := openShared(t, Config{Namespace: ns + "-missing"})
	_, err = fresh.ImportFromStore(ctx, empty, rec)
	if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), rec.Config.Digest.String()) {
		t.Errorf("ImportFromStore from a store without the blobs: %v, want ErrNotFound naming %s", err, rec.Config.Digest)
	}
	if has, _ := fresh.HasImage(ctx, rec.Name); has {
		t.Error("a failed import left an image behind")
	}
}
