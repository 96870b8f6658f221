package hostload

import (
	"os"
	"strings"
)

// Averages is the host's 1, 5 and 15 minute load averages as
// /proc/loadavg gives them ("0.52 0.61 0.70"), or "?" when unreadable.
func Averages() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
