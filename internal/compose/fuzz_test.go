package compose

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzLoad feeds arbitrary bytes to Load as a compose.yaml. Load may refuse
// them, but only with an *Error naming the file, and must never panic; the
// seeds in testdata/fuzz/FuzzLoad come from the Compose corpus.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("services:\n  web:\n    image: nginx\n    ports: [\"80:80\"]\n"))
	f.Add([]byte("services:\n  a:\n    image: x\n    networks:\n      n:\n        aliases: [b]\nnetworks:\n  n: {}\n"))
	f.Add([]byte("x-a: &a\n  image: busybox\nservices:\n  s:\n    <<: *a\n    restart: on-failure:2\n"))
	f.Add([]byte("services:\n  web:\n    image: x\n    x-drover: {canary: 25%, canary_auto_promote: true, rollback: service}\n    deploy:\n      update_config: {parallelism: 0, delay: 1s, order: start-first, failure_action: rollback, monitor: 2s, max_failure_ratio: .5}\n      rollback_config: {failure_action: continue}\n"))
	f.Fuzz(func(t *testing.T, content []byte) {
		dir := t.TempDir()
		file := filepath.Join(dir, "compose.yaml")
		if err := os.WriteFile(file, content, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		res, err := Load(ctx, Options{Files: []string{file}, ProjectName: "fuzz", Environ: []string{"A=1"}})
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Load took %v", d)
		}
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				if ctx.Err() != nil {
					return
				}
				t.Fatalf("error is %T, want *compose.Error: %v", err, err)
			}
			if ce.File == "" {
				t.Fatalf("error names no file: %v", err)
			}
			if strings.Contains(ce.Message, "panic:") {
				t.Logf("compose-go panicked (recovered): %v", err)
			}
			return
		}
		for _, s := range res.Spec.Services {
			if s.Image == "" {
				t.Fatalf("service %q has no image", s.Name)
			}
		}
		for _, w := range res.Warnings {
			_ = w.String()
		}
		if _, err := ConfigYAML(res.Project); err != nil {
			t.Logf("ConfigYAML: %v", err)
		}
	})
}
