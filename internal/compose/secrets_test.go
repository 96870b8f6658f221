package compose

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretsNeverShown loads secrets from a file, from the caller's
// environment and from .env (Compose has no inline secrets), and checks that their
// values reach the spec but never `drover config`'s YAML, a warning or an
// error.
func TestSecretsNeverShown(t *testing.T) {
	const (
		fromFile   = "s3cr3t-from-file"
		fromEnv    = "s3cr3t-from-environ"
		fromDotEnv = "s3cr3t-from-dotenv"
		configEnv  = "c0nfig-from-environ"
	)
	secretValues := []string{fromFile, fromEnv, fromDotEnv, configEnv}
	dir := writeFiles(t, map[string]string{
		"db-password.txt": fromFile + "\n",
		".env":            "DOTENV_TOKEN=" + fromDotEnv + "\n",
		"compose.yaml": `name: vault
services:
  app:
    image: example/app
    secrets: [file-secret, env-secret, dotenv-secret]
    configs: [env-config]
secrets:
  file-secret:
    file: ./db-password.txt
    labels: {warn: me}
  env-secret:
    environment: API_TOKEN
  dotenv-secret:
    environment: DOTENV_TOKEN
configs:
  env-config:
    environment: CONFIG_VALUE
`,
	})
	opts := Options{WorkingDir: dir, Environ: []string{"API_TOKEN=" + fromEnv, "CONFIG_VALUE=" + configEnv}}

	res, err := Load(testContext(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range res.Spec.Secrets {
		got[s.Name] = string(s.Content)
	}
	for _, c := range res.Spec.Configs {
		got["config:"+c.Name] = string(c.Content)
	}
	want := map[string]string{
		"file-secret": fromFile + "\n", "env-secret": fromEnv, "dotenv-secret": fromDotEnv,
		"config:env-config": configEnv,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("content of %s = %q, want %q", k, got[k], v)
		}
	}

	b, err := ConfigYAML(res.Project)
	if err != nil {
		t.Fatal(err)
	}
	var shown []string
	shown = append(shown, string(b))
	for _, w := range res.Warnings {
		shown = append(shown, w.String())
	}
	if len(res.Warnings) == 0 {
		t.Error("expected a warning for secrets.file-secret.labels")
	}

	// An error about a secret names it, not its value.
	if err := os.WriteFile(filepath.Join(dir, "db-password.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	opts.Environ = opts.Environ[1:] // API_TOKEN unset
	_, err = Load(testContext(t), opts)
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "secrets.env-secret.environment" {
		t.Fatalf("err = %v, want an *Error on secrets.env-secret.environment", err)
	}
	shown = append(shown, err.Error())

	for _, text := range shown {
		for _, v := range secretValues {
			if strings.Contains(text, v) {
				t.Errorf("secret value %q shown in:\n%s", v, text)
			}
		}
	}
	if !strings.Contains(string(b), "environment: API_TOKEN") || !strings.Contains(string(b), "file-secret") {
		t.Errorf("config output lacks the secrets' sources:\n%s", b)
	}
}
