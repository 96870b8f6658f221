package runtimetest

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/drover-org/drover/api"
)

// Docker's default capabilities as /proc/PID/status shows them.
const defaultCapEff = "00000000a80425fb"

func (s *suite) testSettings(t *testing.T) {
	hostIPC, _ := os.Readlink("/proc/self/ns/ipc")
	var hostIface string
	if ifaces, err := net.Interfaces(); err == nil {
		for _, i := range ifaces {
			if i.Name != "lo" {
				hostIface = i.Name
				break
			}
		}
	}
	for _, tc := range []struct {
		name     string
		script   string
		settings api.ContainerSettings
		netns    string
		want     []string
		check    func(t *testing.T, log string)
		until    string // the log line that ends the test; default "done"
	}{
		{name: "Defaults", script: "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; df -k /dev/shm | tail -1; ulimit -n",
			want: []string{"CapEff:\t" + defaultCapEff, "Seccomp:\t2", "NoNewPrivs:\t0", " 65536 ", "\n1024\n"}},
		{name: "CapDropAll", script: "grep CapEff /proc/self/status",
			settings: api.ContainerSettings{CapDrop: []string{"ALL"}}, want: []string{"CapEff:\t0000000000000000"}},
		{name: "CapDropAllAddOne", script: "grep CapEff /proc/self/status",
			settings: api.ContainerSettings{CapDrop: []string{"all"}, CapAdd: []string{"CAP_CHOWN"}}, want: []string{"CapEff:\t0000000000000001"}},
		{name: "CapAddDrop", script: "grep CapEff /proc/self/status",
			settings: api.ContainerSettings{CapAdd: []string{"net_admin"}, CapDrop: []string{"NET_RAW"}},
			want:     []string{"CapEff:\t00000000a80415fb"}},
		{name: "Privileged", script: "grep -E '^(CapEff|Seccomp):' /proc/self/status; grep ' /sys ' /proc/mounts; test -e /dev/loop-control && echo has-host-devices",
			settings: api.ContainerSettings{Privileged: true}, want: []string{"Seccomp:\t0", "sysfs rw,", "has-host-devices"},
			check: func(t *testing.T, log string) {
				// Every capability the runtime has, so at least
				// CAP_SYS_ADMIN and CAP_NET_ADMIN beyond the defaults.
				_, rest, _ := strings.Cut(log, "CapEff:\t")
				v, err := strconv.ParseUint(strings.Fields(rest)[0], 16, 64)
				def, _ := strconv.ParseUint(defaultCapEff, 16, 64)
				if want := def | 1<<21 | 1<<12; err != nil || v&want != want {
					t.Errorf("privileged CapEff %x, want all capabilities", v)
				}
			}},
		{name: "SecurityOpt", script: "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
			settings: api.ContainerSettings{SecurityOpt: []string{"seccomp=unconfined", "no-new-privileges:true", "label=disable", "apparmor=unconfined"}},
			want:     []string{"Seccomp:\t0", "NoNewPrivs:\t1"}},
		{name: "ReadOnly", script: "touch /x 2>/dev/null && echo root-writable; touch /tmp/x && echo tmp-writable",
			settings: api.ContainerSettings{ReadOnly: true}, want: []string{}, check: func(t *testing.T, log string) {
				if strings.Contains(log, "root-writable") {
					t.Error("a read-only root filesystem was writable")
				}
			}},
		{name: "Ulimits", script: "echo nofile=$(ulimit -n):$(ulimit -Hn) core=$(ulimit -c)",
			settings: api.ContainerSettings{Ulimits: []api.Ulimit{{Name: "nofile", Soft: 1000, Hard: 2000}, {Name: "core", Soft: 0, Hard: 0}}},
			want:     []string{"nofile=1000:2000 core=0"}},
		{name: "UlimitsAboveHost", script: "echo nofile=$(ulimit -Hn)",
			settings: api.ContainerSettings{Ulimits: []api.Ulimit{{Name: "nofile", Soft: 1 << 30, Hard: 1 << 30}}},
			want:     []string{"nofile="}},
		{name: "PidsLimit", script: "i=0; while [ $i -lt 20 ]; do sleep 5 & i=$((i+1)); done; echo spawned",
			settings: api.ContainerSettings{PidsLimit: 8}, until: "can't fork"},
		{name: "ShmSize", script: "df -k /dev/shm | tail -1",
			settings: api.ContainerSettings{ShmSize: 32 << 20}, want: []string{" 32768 "}},
		{name: "SysctlDomainOom", script: "cat /proc/sys/net/core/somaxconn /proc/sys/kernel/domainname /proc/self/oom_score_adj",
			settings: api.ContainerSettings{Sysctls: map[string]string{"net.core.somaxconn": "1234"}, Domainname: "example.org", OomScoreAdj: 500},
			want:     []string{"1234\nexample.org\n500\n"}},
		{name: "GroupAdd", script: "echo groups=$(id -G)",
			settings: api.ContainerSettings{GroupAdd: []string{"app", "4242"}}, want: []string{"groups=0 1000 4242"}},
		{name: "Resources", script: "echo started",
			settings: api.ContainerSettings{CPUs: 0.5, CPUShares: 512, MemLimit: 64 << 20, MemswapLimit: -1}, want: []string{"started"}},
		{name: "Device", script: "echo x > /dev/mynull && echo device-ok",
			settings: api.ContainerSettings{Devices: []api.Device{{Host: "/dev/null", Container: "/dev/mynull", Permissions: "rw"}}},
			want:     []string{"device-ok"}},
		{name: "PidHost", script: "echo pid=$$", settings: api.ContainerSettings{Pid: "host"},
			want: []string{"pid="}, check: func(t *testing.T, log string) {
				if strings.Contains(log, "pid=1\n") {
					t.Error("with pid: host the container's shell is PID 1")
				}
			}},
		{name: "IpcHost", script: "echo ipc=$(readlink /proc/self/ns/ipc)", settings: api.ContainerSettings{Ipc: "host"},
			want: []string{"ipc=" + hostIPC}},
		{name: "IpcPrivate", script: "echo ipc=$(readlink /proc/self/ns/ipc)", settings: api.ContainerSettings{Ipc: "private"},
			want: []string{"ipc="}, check: func(t *testing.T, log string) {
				if strings.Contains(log, "ipc="+hostIPC) {
					t.Error("ipc: private shares the host's IPC namespace")
				}
			}},
		{name: "NetworkHost", script: "echo ifaces: $(ls /sys/class/net) end", netns: "host",
			want: []string{"ifaces: ", hostIface}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := s.spec(t, ImageOCI, "sh", "-c", tc.script+"; echo done")
			sp.Settings, sp.NetNSPath = tc.settings, tc.netns
			s.run(t, sp)
			until := tc.until
			if until == "" {
				until = "done"
			}
			log := readLog(t, sp.LogPath, until)
			mustContain(t, log, tc.want...)
			if tc.check != nil {
				tc.check(t, log)
			}
		})
	}

	t.Run("Init", func(t *testing.T) {
		sp := s.spec(t, ImageOCI, "sh", "-c", "echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' ') self=$$; echo done")
		sp.Settings.Init = true
		if _, err := s.d.Start(ctxFor(t), sp); err != nil {
			if strings.Contains(err.Error(), "tini") {
				t.Skipf("no init on this node: %v", err)
			}
			t.Fatalf("Start with init: %v", err)
		}
		log := readLog(t, sp.LogPath, "done")
		mustContain(t, log, "pid1=/sbin/docker-init -- sh -c")
		if strings.Contains(log, "self=1\n") {
			t.Error("with init the command is PID 1")
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		for name, st := range map[string]api.ContainerSettings{
			"UnknownCap":         {CapAdd: []string{"CAP_NOPE"}},
			"UnknownUlimit":      {Ulimits: []api.Ulimit{{Name: "nope", Soft: 1, Hard: 1}}},
			"SoftAboveHard":      {Ulimits: []api.Ulimit{{Name: "nofile", Soft: 10, Hard: 5}}},
			"UnknownSecurityOpt": {SecurityOpt: []string{"nope=1"}},
			"MissingDevice":      {Devices: []api.Device{{Host: "/dev/no-such-device"}}},
			"UnknownGroup":       {GroupAdd: []string{"no-such-group"}},
			"IpcContainer":       {Ipc: "container:x"},
			"SwapWithoutMemory":  {MemswapLimit: 1 << 30},
		} {
			sp := s.spec(t, ImageOCI, "true")
			sp.Settings = st
			if _, err := s.d.Start(ctxFor(t), sp); err == nil {
				t.Errorf("%s: Start succeeded", name)
			}
		}
	})
}
