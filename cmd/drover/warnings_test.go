package main

import (
	"testing"

	"github.com/sirupsen/logrus"
)

// compose-go's own warning about `version` is dropped: Drover reports it
// once, with its line; other compose-go warnings pass.
func TestComposeWarnings(t *testing.T) {
	f := composeWarnings{}
	b, _ := f.Format(&logrus.Entry{Message: "/p/compose.yaml: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion"})
	if len(b) != 0 {
		t.Errorf("version warning printed: %q", b)
	}
	b, _ = f.Format(&logrus.Entry{Message: `The "FOO" variable is not set. Defaulting to a blank string.`})
	if string(b) != "WARN The \"FOO\" variable is not set. Defaulting to a blank string.\n" {
		t.Errorf("other warning: %q", b)
	}
}
