package server

import (
	"reflect"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/content"
)

func TestClusterImages(t *testing.T) {
	man := digest.FromString("manifest")
	idx := digest.FromString("index")
	other := digest.FromString("other")
	recs := []content.ImageRecord{
		{Name: "docker.io/library/app:latest", Manifest: ocispec.Descriptor{Digest: man}, Index: &ocispec.Descriptor{Digest: idx}, Size: 10},
		{Name: "docker.io/library/db:1", Manifest: ocispec.Descriptor{Digest: digest.FromString("db")}, Size: 5},
	}
	held := map[string][]api.Image{
		"h2": {{Name: "docker.io/library/app:latest", Digest: idx.String()}}, // imported from the archive
		"h1": {{Name: "docker.io/library/app:latest", Digest: man.String()}}, // fetched from the store
		"h3": {{Name: "docker.io/library/app:latest", Digest: other.String()}, {Name: "docker.io/library/zz:1", Digest: other.String()}},
	}
	got := clusterImages(recs, held)
	type row struct {
		name, digest string
		stored       bool
		nodes        []string
	}
	var rows []row
	for _, im := range got {
		rows = append(rows, row{im.Name, im.Digest, im.Stored, im.Nodes})
	}
	want := []row{
		{"docker.io/library/app:latest", man.String(), true, []string{"h1", "h2"}},
		{"docker.io/library/app:latest", other.String(), false, []string{"h3"}}, // an older copy h3 kept
		{"docker.io/library/db:1", digest.FromString("db").String(), true, nil},
		{"docker.io/library/zz:1", other.String(), false, []string{"h3"}},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("got  %+v\nwant %+v", rows, want)
	}
}
