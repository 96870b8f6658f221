package scheduler
import "testing"
func BenchmarkSmallGroups(b *testing.B) {
	ns, ts := simCluster(1000, 100_000, 1)
	b.ResetTimer()
	for b.Loop() { Schedule(ns, nil, ts) }
	b.ReportMetric(float64(len(ts))*float64(b.N)/b.Elapsed().Seconds(), "placements/s")
}
