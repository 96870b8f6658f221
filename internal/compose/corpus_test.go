package compose

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/drover-org/drover/internal/testenv"
)

// corpusDir holds real-world Compose files (docker/awesome-compose).
const corpusDir = "/work/shared/compose-corpus"

var composeFileNames = map[string]bool{
	"compose.yaml": true, "compose.yml": true,
	"docker-compose.yaml": true, "docker-compose.yml": true,
}

func corpusFiles(t testing.TB) []string {
	t.Helper()
	if _, err := os.Stat(corpusDir); err != nil {
		if testenv.CI() {
			t.Fatalf("compose corpus missing under CI=true: %v", err)
		}
		t.Skipf("compose corpus missing: %v", err)
	}
	var files []string
	err := filepath.WalkDir(corpusDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && composeFileNames[d.Name()] {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// TestCorpus loads every Compose file of the corpus, as `drover config`
// does: each must load (a file is never refused for having build:), every
// warning names a file, nothing may panic, and each service with build:
// has a build planned under its image name.
func TestCorpus(t *testing.T) {
	files := corpusFiles(t)
	if len(files) == 0 {
		t.Fatal("no Compose files in the corpus")
	}
	byKey := map[string]int{}
	loaded, refused, warnings := 0, 0, 0
	for _, f := range files {
		rel, _ := filepath.Rel(corpusDir, f)
		res, err := Load(testContext(t), Options{Files: []string{f}, Environ: []string{"HOME=/home/test"}})
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.File == "" {
				t.Errorf("%s: error without a file: %v (%T)", rel, err, err)
				continue
			}
			refused++
			t.Errorf("%s: refused: %v", rel, err)
			continue
		}
		loaded++
		planned := map[string]string{}
		for _, b := range res.Builds {
			planned[b.Service] = b.Image
		}
		for name, svc := range res.Project.Services {
			if svc.Build == nil {
				continue
			}
			img, ok := planned[name]
			if !ok {
				t.Errorf("%s: service %s has build: but no build is planned", rel, name)
				continue
			}
			for _, s := range res.Spec.Services {
				if s.Name == name && s.Image != img {
					t.Errorf("%s: service %s runs image %q, its build makes %q", rel, name, s.Image, img)
				}
			}
		}
		warnings += len(res.Warnings)
		for _, w := range res.Warnings {
			if w.File == "" {
				t.Errorf("%s: warning without a file: %s", rel, w)
			}
			byKey[w.Key]++
		}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if byKey[keys[i]] != byKey[keys[j]] {
			return byKey[keys[i]] > byKey[keys[j]]
		}
		return keys[i] < keys[j]
	})
	t.Logf("corpus: %d files, %d loaded, %d refused, %d warnings", len(files), loaded, refused, warnings)
	for _, k := range keys {
		t.Logf("  %4d  %s", byKey[k], k)
	}
}
