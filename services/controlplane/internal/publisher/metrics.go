package publisher

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	outboxLag    prometheus.Gauge
	latency      prometheus.Histogram
	size         prometheus.Histogram
	versions     prometheus.Counter
	leader       prometheus.Gauge
	redisErrors  prometheus.Counter
	redisRepairs prometheus.Counter
	snapshotErrs prometheus.Counter
	outboxPruned prometheus.Counter
	snapsPruned  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		outboxLag: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flagforge", Subsystem: "publisher",
			Name: "outbox_lag_seconds", Help: "Age of the oldest unpublished outbox row when the publisher last looked (0: none)."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "flagforge", Subsystem: "publisher",
			Name: "publish_latency_seconds", Help: "Time from a change's commit to the commit of the manifest version that carries it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		size: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "flagforge", Subsystem: "publisher",
			Name: "manifest_size_bytes", Help: "Size of each published manifest payload.",
			Buckets: prometheus.ExponentialBuckets(256, 4, 10)}),
		versions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flagforge", Subsystem: "publisher",
			Name: "versions_published_total", Help: "Manifest versions stored by this process."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flagforge", Subsystem: "publisher",
			Name: "leader", Help: "1 while this process is the active publisher."}),
		redisErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flagforge", Subsystem: "publisher",
			Name: "redis_errors_total", Help: "Failed Redis writes (retried)."}),
		redisRepairs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flagforge", Subsystem: "publisher",
			Name: "redis_repairs_total", Help: "Redis environment hashes found inconsistent with the database (a forged or corrupt version index or manifest) and re-written."}),
		snapshotErrs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flagforge", Subsystem: "publisher",
			Name: "snapshot_errors_total", Help: "Snapshots that could not be written to object storage after retries."}),
		outboxPruned: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flagforge", Subsystem: "publisher",
			Name: "outbox_pruned_total", Help: "Published outbox rows deleted after the retention."}),
		snapsPruned: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flagforge", Subsystem: "publisher",
			Name: "snapshots_pruned_total", Help: "Manifest snapshots deleted by the snapshot retention."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.outboxLag, m.latency, m.size, m.versions, m.leader, m.redisErrors, m.redisRepairs, m.snapshotErrs,
		m.outboxPruned, m.snapsPruned} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
