package fake

import (
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/runtime"
)

// Behavior is what happens to the images and containers it applies to.
// The zero Behavior pulls and starts at once and runs until stopped.
type Behavior struct {
	// PullLatency is how long EnsureImage takes for a missing image.
	PullLatency time.Duration
	// PullError makes the pull of a missing image fail with this message.
	PullError string
	// StartLatency is how long Start takes before the container runs.
	StartLatency time.Duration
	// StartError makes Start fail with this message, leaving no container.
	// With FailStarts > 0 only the first FailStarts starts of the image
	// fail, so that a test can watch a restart policy recover.
	StartError string
	FailStarts int
	// ExitAfter ends the container this long after it started, with
	// ExitCode; 0 keeps it running until it is stopped or killed.
	ExitAfter time.Duration
	ExitCode  int
	// IgnoreStop makes the container ignore every signal but SIGKILL, as a
	// process trapping SIGTERM does: Stop kills it after the grace period.
	IgnoreStop bool
	// ExecExitCode and ExecOutput are what every Exec in the container
	// returns and writes to its stdout.
	ExecExitCode int
	ExecOutput   string
	// Healthcheck is the image's HEALTHCHECK, for ImageHealthcheck.
	Healthcheck *api.Healthcheck
	// Stats is what Stats reports (its Time is set on each call).
	Stats runtime.Stats
}

// Script gives each image its behaviour.
type Script struct {
	// Default applies to every image not in Images.
	Default Behavior
	// Images by reference, as written in the container spec or in its
	// normalized form ("busybox" or "docker.io/library/busybox:latest").
	Images map[string]Behavior
	// Offline makes every pull fail, as on a host without a registry:
	// only imported (or Preloaded) images can run.
	Offline bool
}

// behavior finds the behaviour for an image by the reference as given,
// then by its normalized name.
func (s *Script) behavior(ref, name string) Behavior {
	if b, ok := s.Images[ref]; ok {
		return b
	}
	if b, ok := s.Images[name]; ok {
		return b
	}
	return s.Default
}
