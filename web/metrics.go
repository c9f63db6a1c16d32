package web

import (
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshdrive/meshdrive/fs"
	"github.com/meshdrive/meshdrive/remote"
)

// Metrics are the mount's Prometheus metrics, in a registry of its own
// (two mounts in one process keep two).
type Metrics struct {
	reg         *prometheus.Registry
	fuseOps     *prometheus.HistogramVec
	fuseErrors  *prometheus.CounterVec
	nodeOps     *prometheus.HistogramVec
	nodeErrors  *prometheus.CounterVec
	gridRead    prometheus.Counter
	gridShipped prometheus.Counter
}

// Sources are read when /metrics is scraped. Every field is optional.
type Sources struct {
	// Cache: reads served from memory and from disk, reads that went to
	// the grid, and the bytes each tier holds.
	Cache func() (memHits, diskHits, misses uint64, memBytes, diskBytes int64)
	// JournalReads: block reads served from the journal's copies of
	// blocks written here, which the cache never sees: kept after their
	// upload, and staged before it (fs.CacheStats).
	JournalReads func() (kept, staged uint64)
	// Progress is the upload queue (fs.Drive.Progress).
	Progress func() fs.Progress
	// RepairOwed: segments with fewer than n shards.
	RepairOwed func() int64
	// JournalBytes: the journal's size on local disk.
	JournalBytes func() int64
}

// NewMetrics makes the registry with the process's Go and process metrics.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{reg: reg,
		fuseOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meshdrive_fuse_op_duration_seconds",
			Help:    "Time the drive took to answer FUSE requests, by kind.",
			Buckets: prometheus.ExponentialBuckets(20e-6, 4, 11)}, []string{"op"}),
		fuseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshdrive_fuse_op_errors_total",
			Help: "FUSE requests answered with an error (not counting ENOENT and ENODATA), by kind."}, []string{"op"}),
		nodeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meshdrive_node_request_duration_seconds",
			Help:    "Time storage nodes took to answer, by node and operation.",
			Buckets: prometheus.ExponentialBuckets(100e-6, 4, 10)}, []string{"node", "op"}),
		nodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshdrive_node_errors_total",
			Help: "Storage node requests that failed (not counting not-found), by node and operation."}, []string{"node", "op"}),
		gridRead: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshdrive_grid_read_bytes_total",
			Help: "Shard bytes read from storage nodes."}),
		gridShipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshdrive_grid_shipped_bytes_total",
			Help: "Shard bytes written to storage nodes (uploads, metadata, repair)."}),
	}
	reg.MustRegister(m.fuseOps, m.fuseErrors, m.nodeOps, m.nodeErrors, m.gridRead, m.gridShipped)
	return m
}

// ObserveFUSE is an fs.OpObserver.
func (m *Metrics) ObserveFUSE(op string, d time.Duration, failed bool) {
	m.fuseOps.WithLabelValues(op).Observe(d.Seconds())
	if failed {
		m.fuseErrors.WithLabelValues(op).Inc()
	}
}

// ObserveNode is a metered.Observer.
func (m *Metrics) ObserveNode(node, op string, bytes int, d time.Duration, err error) {
	m.nodeOps.WithLabelValues(node, op).Observe(d.Seconds())
	if err != nil && !isNotFound(err) {
		m.nodeErrors.WithLabelValues(node, op).Inc()
		return
	}
	switch op {
	case "get":
		if err == nil {
			m.gridRead.Add(float64(bytes))
		}
	case "put":
		m.gridShipped.Add(float64(bytes))
	}
}

// Watch registers the metrics read from src at each scrape.
func (m *Metrics) Watch(src Sources) {
	gauge := func(name, help string, f func() float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	if c := src.Cache; c != nil {
		counter := func(name, help string, labels prometheus.Labels, f func() float64) {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, f))
		}
		counter("meshdrive_cache_hits_total", "Block reads served by the local cache, by tier.", prometheus.Labels{"tier": "memory"},
			func() float64 { h, _, _, _, _ := c(); return float64(h) })
		counter("meshdrive_cache_hits_total", "Block reads served by the local cache, by tier.", prometheus.Labels{"tier": "disk"},
			func() float64 { _, h, _, _, _ := c(); return float64(h) })
		counter("meshdrive_cache_misses_total", "Block reads that waited on the grid.", nil,
			func() float64 { _, _, x, _, _ := c(); return float64(x) })
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meshdrive_cache_bytes", Help: "Bytes the local cache holds, by tier.",
			ConstLabels: prometheus.Labels{"tier": "memory"}}, func() float64 { _, _, _, b, _ := c(); return float64(b) }))
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meshdrive_cache_bytes", Help: "Bytes the local cache holds, by tier.",
			ConstLabels: prometheus.Labels{"tier": "disk"}}, func() float64 { _, _, _, _, b := c(); return float64(b) }))
	}
	if r := src.JournalReads; r != nil {
		// A metric of its own: the cache's counters keep their meaning.
		const help = "Block reads served from the journal's local copies of files written here (not in meshdrive_cache_*), by copy: kept after the upload, or staged before it."
		for _, c := range []struct {
			copy string
			f    func() float64
		}{
			{"kept", func() float64 { k, _ := r(); return float64(k) }},
			{"staged", func() float64 { _, s := r(); return float64(s) }},
		} {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "meshdrive_journal_reads_total", Help: help,
				ConstLabels: prometheus.Labels{"copy": c.copy}}, c.f))
		}
	}
	if p := src.Progress; p != nil {
		gauge("meshdrive_upload_queue_bytes", "Plaintext bytes waiting to reach the grid.", func() float64 { return float64(p().Bytes) })
		gauge("meshdrive_upload_queue_blocks", "Blocks waiting to reach the grid.", func() float64 { return float64(p().Blocks) })
		gauge("meshdrive_upload_queue_files", "Files with data waiting to reach the grid.", func() float64 { return float64(p().Files) })
		gauge("meshdrive_upload_queue_age_seconds", "How long the upload queue has been non-empty without a break (0: empty).",
			func() float64 { return p().QueueAgeSeconds })
		gauge("meshdrive_upload_rate_bytes_per_second", "Recent rate at which data becomes grid-durable.", func() float64 { return p().Rate })
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "meshdrive_upload_durable_bytes_total",
			Help: "Plaintext bytes made grid-durable since the mount."}, func() float64 { return float64(p().DoneBytes) }))
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "meshdrive_upload_errors_total",
			Help: "Upload attempts that failed since the mount."}, func() float64 { return float64(p().Errors) }))
	}
	if r := src.RepairOwed; r != nil {
		gauge("meshdrive_repair_owed_segments", "Segments stored with fewer than n shards (repair owed).", func() float64 { return float64(r()) })
	}
	if j := src.JournalBytes; j != nil {
		gauge("meshdrive_journal_bytes", "Size of the journal (database and dirty data) on local disk.", func() float64 { return float64(j()) })
	}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func isNotFound(err error) bool { return errors.Is(err, remote.ErrNotFound) }
