package compose

import (
	"context"
	"testing"
)

func TestRepro(t *testing.T) {
	for _, f := range []string{"/tmp/fz/b.yaml", "/tmp/fz/a.yaml"} {
		_, err := Load(context.Background(), Options{Files: []string{f}, ProjectName: "x"})
		t.Logf("%s: %v", f, err)
	}
}
