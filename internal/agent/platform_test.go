package agent

import (
	"testing"

	"github.com/containerd/platforms"
)

func TestPlatformFits(t *testing.T) {
	amd64 := platforms.MustParse("linux/amd64")
	for _, tc := range []struct {
		want string
		ok   bool
	}{
		{"", true},
		{"linux/amd64", true},
		{"linux/x86_64", true},
		{"linux/386", true}, // amd64 nodes run 386 binaries
		{"linux/arm64", false},
		{"linux/arm/v7", false},
		{"windows/amd64", false},
	} {
		if err := platformFits(tc.want, amd64); (err == nil) != tc.ok {
			t.Errorf("platformFits(%q, linux/amd64) = %v, want ok=%v", tc.want, err, tc.ok)
		}
	}
}
