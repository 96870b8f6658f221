package logs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/core/runtime/v2/logging"
	"github.com/drover-org/drover/api"
)

// shutdownGrace is how long the shim logger keeps copying after SIGTERM,
// for output still in the pipes, before it closes the file and exits.
const shutdownGrace = 2 * time.Second

// RunShimLogger is the entry point of `drover shim-logger PATH`, the logging
// binary containerd's runc shim runs for a container whose log URI is
// binary-v2:///path/to/drover?shim-logger=PATH (the shim turns the query
// into arguments). With the binary-v2 scheme the shim starts the container
// only after the logger has signalled readiness; with plain binary:// it
// would also start it if the logger died first, losing the output.
//
// The shim passes the container's stdout as fd 3, its stderr as fd 4 and a
// pipe to signal readiness as fd 5 (see containerd's core/runtime/v2/logging).
// RunShimLogger opens a Writer at path with default options, signals
// readiness, and copies both pipes into it until both reach EOF. On SIGTERM,
// which the shim sends when it closes the container's IO, it copies for up
// to shutdownGrace more, then closes the file.
//
// It hands control to containerd's logging.Run, which ends the process: with
// status 0 once the copying is done, or 1 after printing the error (such as
// a log file that cannot be created, in which case readiness is never
// signalled and the container fails to start). It returns only when path is
// empty.
func RunShimLogger(path string) error {
	if path == "" {
		return fmt.Errorf("shim-logger: no log path given (usage: drover shim-logger PATH): %w", api.ErrInvalid)
	}
	logging.Run(shimLogger(path, OptionsBeside(path)))
	return nil
}

// OptionsFile is the file, in the log's directory, where the agent puts the
// container's rotation limits (Compose logging max-size and max-file) for
// the shim logger to read: the shim passes the logger nothing but the path.
const OptionsFile = "logging.json"

// WriteOptionsBeside records rotation limits next to the log at path.
func WriteOptionsBeside(path string, opts WriterOptions) error {
	b, err := json.Marshal(opts)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(filepath.Dir(path), OptionsFile), b, 0o600)
}

// OptionsBeside reads the limits WriteOptionsBeside recorded; defaults when
// there are none.
func OptionsBeside(path string) WriterOptions {
	var o WriterOptions
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(path), OptionsFile)); err == nil {
		_ = json.Unmarshal(b, &o)
	}
	if o.MaxSize < 0 {
		o.MaxSize = 0
	}
	if o.MaxFiles < 0 {
		o.MaxFiles = 0
	}
	return o
}

// shimLogger is the logging.LoggerFunc of RunShimLogger.
func shimLogger(path string, opts WriterOptions) logging.LoggerFunc {
	return func(ctx context.Context, cfg *logging.Config, ready func() error) error {
		w, err := NewWriter(path, opts)
		if err != nil {
			return fmt.Errorf("shim-logger: %w", err)
		}
		if err := ready(); err != nil {
			w.Close()
			return fmt.Errorf("shim-logger: signalling readiness: %w", err)
		}
		errs := make(chan error, 2)
		streams := 0
		for _, s := range []struct {
			name string
			r    io.Reader
		}{{Stdout, cfg.Stdout}, {Stderr, cfg.Stderr}} {
			if s.r == nil {
				continue
			}
			streams++
			go func() { errs <- w.StreamFrom(s.name, s.r) }()
		}
		var all []error
		grace := (<-chan time.Time)(nil)
		done := ctx.Done()
	wait:
		for streams > 0 {
			select {
			case err := <-errs:
				all = append(all, err)
				streams--
			case <-done:
				// SIGTERM: the shim is going away. Give the pipes a moment
				// to drain, then keep what was written.
				done = nil
				grace = time.After(shutdownGrace)
			case <-grace:
				break wait
			}
		}
		all = append(all, w.Close())
		if err := errors.Join(all...); err != nil {
			return fmt.Errorf("shim-logger %s: %w", path, err)
		}
		return nil
	}
}
