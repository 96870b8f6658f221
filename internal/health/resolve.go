package health

import (
	"fmt"
	"slices"
	"time"

	"github.com/drover-org/drover/api"
)

// Health statuses, as Docker names them. StatusNone is the status of a
// container without a health check.
const (
	StatusStarting  = "starting"
	StatusHealthy   = "healthy"
	StatusUnhealthy = "unhealthy"
	StatusNone      = ""
)

// Docker's defaults for the fields of a health check left at zero.
const (
	DefaultInterval      = 30 * time.Second
	DefaultTimeout       = 30 * time.Second
	DefaultStartPeriod   = 0
	DefaultStartInterval = 5 * time.Second
	DefaultRetries       = 3
)

// Test kinds, the first element of Healthcheck.Test.
const (
	TestNone     = "NONE"
	TestCmd      = "CMD"
	TestCmdShell = "CMD-SHELL"
)

// Resolve merges a service's healthcheck with the image's own HEALTHCHECK as
// Docker does: each field the service leaves at zero (Test empty, durations
// and Retries zero) comes from the image, and a nil service healthcheck
// takes the image's whole. The result has Docker's defaults filled in and
// shares no memory with the arguments.
//
// Resolve returns nil when the container has no check: the service disables
// it (Disable, or a Test of ["NONE"]), neither defines a Test, or the merged
// Test is ["NONE"].
func Resolve(svc *api.Healthcheck, image *api.Healthcheck) *api.Healthcheck {
	if svc != nil && (svc.Disable || isNone(svc.Test)) {
		return nil
	}
	var hc api.Healthcheck
	switch {
	case svc == nil && image == nil:
		return nil
	case svc == nil:
		hc = *image
	case image == nil:
		hc = *svc
	default:
		hc = *svc
		if len(hc.Test) == 0 {
			hc.Test = image.Test
		}
		if hc.Interval == 0 {
			hc.Interval = image.Interval
		}
		if hc.Timeout == 0 {
			hc.Timeout = image.Timeout
		}
		if hc.StartPeriod == 0 {
			hc.StartPeriod = image.StartPeriod
		}
		if hc.StartInterval == 0 {
			hc.StartInterval = image.StartInterval
		}
		if hc.Retries == 0 {
			hc.Retries = image.Retries
		}
	}
	if hc.Disable || len(hc.Test) == 0 || isNone(hc.Test) {
		return nil
	}
	hc.Test = slices.Clone(hc.Test)
	hc.Interval = api.Duration(interval(&hc))
	hc.Timeout = api.Duration(timeout(&hc))
	hc.StartPeriod = api.Duration(startPeriod(&hc))
	hc.StartInterval = api.Duration(startInterval(&hc))
	hc.Retries = retries(&hc)
	return &hc
}

func isNone(test []string) bool { return len(test) > 0 && test[0] == TestNone }

// Command returns the command a probe runs for test: the arguments of
// ["CMD", args...] as they are, and ["/bin/sh", "-c", command] for
// ["CMD-SHELL", command]. Anything else is an error wrapping api.ErrInvalid.
func Command(test []string) ([]string, error) {
	if len(test) == 0 {
		return nil, fmt.Errorf("healthcheck test is empty: %w", api.ErrInvalid)
	}
	switch test[0] {
	case TestCmd:
		if len(test) < 2 || test[1] == "" {
			return nil, fmt.Errorf("healthcheck test %q has no command: %w", test, api.ErrInvalid)
		}
		return slices.Clone(test[1:]), nil
	case TestCmdShell:
		if len(test) < 2 {
			return nil, fmt.Errorf("healthcheck test %q has no command: %w", test, api.ErrInvalid)
		}
		// Docker appends every remaining element to the shell; Compose
		// always gives exactly one.
		return append([]string{"/bin/sh", "-c"}, test[1:]...), nil
	default:
		return nil, fmt.Errorf("healthcheck test %q: want [\"CMD\", args...], [\"CMD-SHELL\", command] or [\"NONE\"]: %w", test, api.ErrInvalid)
	}
}

// The accessors below give a field's value with Docker's default for zero
// (and, defensively, for negative values), so the state machine also works
// on a healthcheck that did not go through Resolve.

func interval(hc *api.Healthcheck) time.Duration {
	return orDefault(hc.Interval.D(), DefaultInterval)
}

func timeout(hc *api.Healthcheck) time.Duration {
	return orDefault(hc.Timeout.D(), DefaultTimeout)
}

func startPeriod(hc *api.Healthcheck) time.Duration {
	return orDefault(hc.StartPeriod.D(), DefaultStartPeriod)
}

func startInterval(hc *api.Healthcheck) time.Duration {
	return orDefault(hc.StartInterval.D(), DefaultStartInterval)
}

func retries(hc *api.Healthcheck) int {
	if hc.Retries <= 0 {
		return DefaultRetries
	}
	return hc.Retries
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
