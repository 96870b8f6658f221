package health

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

func dur(d time.Duration) api.Duration { return api.Duration(d) }

// withDefaults is hc with Docker's defaults in its zero fields.
func withDefaults(hc api.Healthcheck) *api.Healthcheck {
	if hc.Interval == 0 {
		hc.Interval = dur(DefaultInterval)
	}
	if hc.Timeout == 0 {
		hc.Timeout = dur(DefaultTimeout)
	}
	if hc.StartInterval == 0 {
		hc.StartInterval = dur(DefaultStartInterval)
	}
	if hc.Retries == 0 {
		hc.Retries = DefaultRetries
	}
	return &hc
}

func TestResolve(t *testing.T) {
	image := &api.Healthcheck{
		Test:          []string{"CMD", "/healthz"},
		Interval:      dur(10 * time.Second),
		Timeout:       dur(2 * time.Second),
		StartPeriod:   dur(time.Minute),
		StartInterval: dur(time.Second),
		Retries:       5,
	}
	tests := []struct {
		name       string
		svc, image *api.Healthcheck
		want       *api.Healthcheck
	}{
		{name: "neither", want: nil},
		{
			name: "service only gets defaults",
			svc:  &api.Healthcheck{Test: []string{"CMD-SHELL", "curl -f localhost"}},
			want: withDefaults(api.Healthcheck{Test: []string{"CMD-SHELL", "curl -f localhost"}}),
		},
		{name: "image only", image: image, want: image},
		{
			name:  "image only, defaults",
			image: &api.Healthcheck{Test: []string{"CMD", "true"}},
			want:  withDefaults(api.Healthcheck{Test: []string{"CMD", "true"}}),
		},
		{
			name:  "service overrides image field by field",
			svc:   &api.Healthcheck{Test: []string{"CMD", "other"}, Interval: dur(3 * time.Second), Retries: 1},
			image: image,
			want: &api.Healthcheck{
				Test:          []string{"CMD", "other"},
				Interval:      dur(3 * time.Second),
				Timeout:       dur(2 * time.Second),
				StartPeriod:   dur(time.Minute),
				StartInterval: dur(time.Second),
				Retries:       1,
			},
		},
		{
			name:  "service without test keeps image test",
			svc:   &api.Healthcheck{Timeout: dur(7 * time.Second)},
			image: image,
			want: &api.Healthcheck{
				Test:          []string{"CMD", "/healthz"},
				Interval:      dur(10 * time.Second),
				Timeout:       dur(7 * time.Second),
				StartPeriod:   dur(time.Minute),
				StartInterval: dur(time.Second),
				Retries:       5,
			},
		},
		{name: "service without test, no image", svc: &api.Healthcheck{Interval: dur(time.Second)}, want: nil},
		{name: "service NONE disables image check", svc: &api.Healthcheck{Test: []string{"NONE"}}, image: image, want: nil},
		{name: "service Disable disables image check", svc: &api.Healthcheck{Disable: true}, image: image, want: nil},
		{name: "service Disable with a test", svc: &api.Healthcheck{Disable: true, Test: []string{"CMD", "true"}}, want: nil},
		{name: "image NONE", image: &api.Healthcheck{Test: []string{"NONE"}}, want: nil},
		{name: "image NONE, service sets only interval", svc: &api.Healthcheck{Interval: dur(time.Second)}, image: &api.Healthcheck{Test: []string{"NONE"}}, want: nil},
		{
			name:  "service test over image NONE",
			svc:   &api.Healthcheck{Test: []string{"CMD", "true"}},
			image: &api.Healthcheck{Test: []string{"NONE"}},
			want:  withDefaults(api.Healthcheck{Test: []string{"CMD", "true"}}),
		},
		{
			name: "negative values mean defaults",
			svc:  &api.Healthcheck{Test: []string{"CMD", "true"}, Interval: -1, Timeout: -1, StartPeriod: -1, StartInterval: -1, Retries: -1},
			want: withDefaults(api.Healthcheck{Test: []string{"CMD", "true"}}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Resolve(tt.svc, tt.image)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Resolve() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestResolveSharesNoMemory(t *testing.T) {
	svc := &api.Healthcheck{Test: []string{"CMD", "true"}}
	got := Resolve(svc, nil)
	got.Test[1] = "changed"
	got.Retries = 9
	if svc.Test[1] != "true" || svc.Retries != 0 {
		t.Fatalf("Resolve modified or aliases its argument: %+v", svc)
	}
}

func TestCommand(t *testing.T) {
	tests := []struct {
		test    []string
		want    []string
		wantErr bool
	}{
		{test: []string{"CMD", "curl", "-f", "http://localhost"}, want: []string{"curl", "-f", "http://localhost"}},
		{test: []string{"CMD-SHELL", "curl -f localhost || exit 1"}, want: []string{"/bin/sh", "-c", "curl -f localhost || exit 1"}},
		{test: nil, wantErr: true},
		{test: []string{"CMD"}, wantErr: true},
		{test: []string{"CMD", ""}, wantErr: true},
		{test: []string{"CMD-SHELL"}, wantErr: true},
		{test: []string{"NONE"}, wantErr: true},
		{test: []string{"curl", "localhost"}, wantErr: true},
	}
	for _, tt := range tests {
		got, err := Command(tt.test)
		if tt.wantErr {
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("Command(%q) error = %v, want api.ErrInvalid", tt.test, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Command(%q) = %q, %v; want %q", tt.test, got, err, tt.want)
		}
	}
}
