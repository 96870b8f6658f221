package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

func TestChooseSource(t *testing.T) {
	for _, tc := range []struct {
		policy                  string
		inCluster, localMatches bool
		want                    imageSource
	}{
		{"", true, true, fromLocal},
		{"", true, false, fromCluster},
		{"", false, false, fromRegistry},
		{"", false, true, fromRegistry}, // only a cluster record can match
		{"never", true, false, fromCluster},
		{"never", false, false, fromRegistry}, // the caller refuses to pull
		{"always", true, true, fromRegistry},  // the registry first, then the cluster's copy
	} {
		if got := chooseSource(tc.policy, tc.inCluster, tc.localMatches); got != tc.want {
			t.Errorf("chooseSource(%q, %v, %v) = %v, want %v", tc.policy, tc.inCluster, tc.localMatches, got, tc.want)
		}
	}
}

// A transfer that stalls is broken off and tried again from where it
// stopped; the next try finishes.
func TestFetchResumingAfterStall(t *testing.T) {
	const total = 100
	have := int64(0)
	tries := 0
	var retries []int64
	err := fetchResuming(context.Background(), 80*time.Millisecond, time.Minute,
		func(ctx context.Context, progress func(done, total int64)) error {
			tries++
			for have < total {
				if tries == 1 && have == 40 {
					<-ctx.Done() // the link is cut: nothing moves
					return ctx.Err()
				}
				have += 10
				progress(have, total)
			}
			return nil
		}, nil, func(err error, n int64) {
			if !errors.Is(err, errStalled) {
				t.Errorf("retry after %v, want a stall", err)
			}
			retries = append(retries, n)
		})
	if err != nil {
		t.Fatal(err)
	}
	if tries != 2 || len(retries) != 1 || retries[0] != 40 {
		t.Fatalf("tries %d, retries at %v; want 2 tries, one retry at 40 bytes", tries, retries)
	}
}

func TestFetchResumingFinalErrors(t *testing.T) {
	for _, final := range []error{api.ErrNotFound, api.ErrInvalid, api.ErrForbidden} {
		tries := 0
		err := fetchResuming(context.Background(), time.Second, time.Minute,
			func(ctx context.Context, progress func(done, total int64)) error {
				tries++
				return fmt.Errorf("blob sha256:abc: %w", final)
			}, nil, nil)
		if !errors.Is(err, final) || tries != 1 {
			t.Errorf("%v: got %v after %d tries, want it after 1", final, err, tries)
		}
	}
}

// Broken transfers that never move a byte give up after giveUp.
func TestFetchResumingGivesUp(t *testing.T) {
	start := time.Now()
	err := fetchResuming(context.Background(), 40*time.Millisecond, 150*time.Millisecond,
		func(ctx context.Context, progress func(done, total int64)) error {
			return errors.New("connection refused")
		}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "no progress") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestFetchProgressMessage(t *testing.T) {
	p := newFetchProgress("docker.io/library/app:latest", 50_000_000)
	p.update(12_345_678, 50_000_000)
	if got, want := p.message(), "fetching image docker.io/library/app:latest: 12.3/50.0 MB"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
