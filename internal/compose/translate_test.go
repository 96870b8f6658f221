package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testEnviron is the fixed environment the golden tests interpolate with.
var testEnviron = []string{"FROM_HOST=host value", "HOME=/home/test"}

// golden is what a translation test records: the spec and warnings, or the
// error.
type golden struct {
	Spec     *api.StackSpec `json:"spec,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
	Error    string         `json:"error,omitempty"`
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestTranslateGolden loads each testdata/translate/*.yaml and compares the
// result with its .golden.json; run with -update to rewrite them.
func TestTranslateGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/translate/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			var got golden
			res, err := Load(testContext(t), Options{Files: []string{file}, Environ: testEnviron, Platform: "linux/amd64"})
			if err != nil {
				var ce *Error
				if !errors.As(err, &ce) {
					t.Fatalf("error is %T, want *compose.Error: %v", err, err)
				}
				if !errors.Is(err, api.ErrInvalid) {
					t.Errorf("error does not match api.ErrInvalid: %v", err)
				}
				got.Error = err.Error()
			} else {
				got.Spec = &res.Spec
				for _, w := range res.Warnings {
					got.Warnings = append(got.Warnings, w.String())
				}
			}
			b, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, '\n')
			// Bind sources are absolute: keep the golden files free of
			// where the repository is checked out.
			if abs, err := filepath.Abs(filepath.Dir(file)); err == nil {
				b = bytes.ReplaceAll(b, []byte(abs), []byte("$TESTDATA"))
			}
			path := strings.TrimSuffix(file, ".yaml") + ".golden.json"
			if *update {
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(want, b) {
				t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", file, b, want)
			}
		})
	}
}
