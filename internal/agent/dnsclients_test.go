package agent

import (
	"slices"
	"testing"

	"github.com/drover-org/drover/api"
)

func TestDNSClient(t *testing.T) {
	task := func(nets ...string) api.Task {
		var t api.Task
		for _, n := range nets {
			t.Networks = append(t.Networks, api.Attachment{Network: api.Network{Name: n, FullName: "p_" + n}})
		}
		return t
	}
	tests := []struct {
		name  string
		task  api.Task
		addrs map[string]string
		want  []string // network=ip, in order
	}{
		{"task's order, not the map's", task("n2", "n1"), map[string]string{"p_n1": "10.1.0.2", "p_n2": "10.2.0.2"}, []string{"p_n2=10.2.0.2", "p_n1=10.1.0.2"}},
		{"one network", task("n1"), map[string]string{"p_n1": "10.1.0.2"}, []string{"p_n1=10.1.0.2"}},
		{"network without an address left out", task("n1", "n2"), map[string]string{"p_n2": "10.2.0.2"}, []string{"p_n2=10.2.0.2"}},
		{"bad address left out", task("n1"), map[string]string{"p_n1": "nope"}, nil},
		{"no network", task(), map[string]string{"p_n1": "10.1.0.2"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, a := range dnsClient(tt.task, tt.addrs).Attachments {
				got = append(got, a.Network+"="+a.IP.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
