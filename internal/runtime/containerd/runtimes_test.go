package containerd

import "testing"

func TestOlderSpecVersion(t *testing.T) {
	crun := "crun version 1.8.1\ncommit: f8a096be\nrundir: /run/crun\nspec: 1.0.0\n+SYSTEMD +SELINUX\n"
	runc := "runc version 1.1.5\ncommit: v1.1.5\nspec: 1.0.2-dev\ngo: go1.19\n"
	for _, tc := range []struct{ out, ours, want string }{
		{crun, "1.2.1", "1.0.0"},
		{runc, "1.2.1", "1.0.2-dev"},
		{runc, "1.0.2", ""},
		{"spec: 1.2.0\n", "1.2.1", ""},
		{"no version here", "1.2.1", ""},
	} {
		if got := olderSpecVersion(tc.out, tc.ours); got != tc.want {
			t.Errorf("olderSpecVersion(%q, %s) = %q, want %q", tc.out, tc.ours, got, tc.want)
		}
	}
}
