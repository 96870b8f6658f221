package integration

import (
	"os"
	"testing"

	"github.com/drover-org/drover/test/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.RemoveBinaries()
	os.Exit(code)
}
