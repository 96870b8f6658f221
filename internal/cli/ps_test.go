package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

func TestPSShowsExposedPorts(t *testing.T) {
	task := api.Task{Stack: "p", Service: "web", Slot: 1, Spec: api.ServiceSpec{
		ContainerName: "my-web",
		Ports:         []api.PortSpec{{Published: 8080, Target: 80, Protocol: "tcp"}},
		Expose:        []string{"80/tcp", "9000-9001/tcp", "53/udp"},
	}}
	e := psEntry(task, time.Now())
	if e.Name != "my-web" {
		t.Errorf("Name = %q, want the container_name", e.Name)
	}
	want := []Publisher{
		{URL: "0.0.0.0", TargetPort: 80, PublishedPort: 8080, Protocol: "tcp"},
		{TargetPort: 9000, Protocol: "tcp"}, {TargetPort: 9001, Protocol: "tcp"}, {TargetPort: 53, Protocol: "udp"},
	}
	if len(e.Publishers) != len(want) {
		t.Fatalf("Publishers = %+v, want %+v", e.Publishers, want)
	}
	for i := range want {
		if e.Publishers[i] != want[i] {
			t.Errorf("Publishers[%d] = %+v, want %+v", i, e.Publishers[i], want[i])
		}
	}
	var b bytes.Buffer
	if err := printPS(&b, []PSEntry{e}, "table"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "0.0.0.0:8080->80/tcp, 9000/tcp, 9001/tcp, 53/udp") {
		t.Errorf("table:\n%s", b.String())
	}
}
