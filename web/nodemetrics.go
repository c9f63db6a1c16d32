package web

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshdrive/meshdrive/remote"
)

// NodeMetrics are a storage node's (meshdrive node serve) Prometheus
// metrics: requests by operation and status with their latency, and what
// the node stores, read at each scrape.
type NodeMetrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewNodeMetrics makes the registry; info is the node's own report
// (node.Server.Info).
func NewNodeMetrics(info func(context.Context) (remote.NodeInfo, error)) *NodeMetrics {
	reg := prometheus.NewRegistry()
	m := &NodeMetrics{reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshdrive_node_server_requests_total",
			Help: "Requests answered, by operation and HTTP status (verify with 409: a shard failed its checksum)."}, []string{"op", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meshdrive_node_server_request_duration_seconds",
			Help: "Time to answer requests, by operation.", Buckets: prometheus.ExponentialBuckets(100e-6, 4, 10)}, []string{"op"}),
	}
	reg.MustRegister(m.requests, m.latency, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &nodeInfoCollector{info: info})
	return m
}

// Observe is node.ServerOptions.Observe.
func (m *NodeMetrics) Observe(op string, status int, d time.Duration) {
	m.requests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}

// Handler serves the registry in the Prometheus text format.
func (m *NodeMetrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// nodeInfoCollector asks the node once per scrape.
type nodeInfoCollector struct {
	info func(context.Context) (remote.NodeInfo, error)
}

var (
	nodeObjects  = prometheus.NewDesc("meshdrive_node_server_objects", "Objects (shards and the drive's meta objects) stored.", nil, nil)
	nodeCapacity = prometheus.NewDesc("meshdrive_node_server_capacity_bytes", "Size of the disk the node stores on.", nil, nil)
	nodeFree     = prometheus.NewDesc("meshdrive_node_server_free_bytes", "Free bytes on that disk.", nil, nil)
	nodeChecked  = prometheus.NewDesc("meshdrive_node_server_scrub_checked_total", "Objects the scrubber verified (node serve --scrub-rate).", nil, nil)
	nodeCorrupt  = prometheus.NewDesc("meshdrive_node_server_scrub_corrupt_total", "Objects the scrubber found corrupt and moved aside.", nil, nil)
	nodeUp       = prometheus.NewDesc("meshdrive_node_server_store_up", "1 when the store answered this scrape's info request.", nil, nil)
)

func (c *nodeInfoCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{nodeObjects, nodeCapacity, nodeFree, nodeChecked, nodeCorrupt, nodeUp} {
		ch <- d
	}
}

func (c *nodeInfoCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ni, err := c.info(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(nodeUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(nodeUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(nodeObjects, prometheus.GaugeValue, float64(ni.Objects))
	if ni.Capacity >= 0 {
		ch <- prometheus.MustNewConstMetric(nodeCapacity, prometheus.GaugeValue, float64(ni.Capacity))
		ch <- prometheus.MustNewConstMetric(nodeFree, prometheus.GaugeValue, float64(ni.Free))
	}
	if sc := ni.Scrub; sc != nil {
		ch <- prometheus.MustNewConstMetric(nodeChecked, prometheus.CounterValue, float64(sc.Checked))
		ch <- prometheus.MustNewConstMetric(nodeCorrupt, prometheus.CounterValue, float64(sc.CorruptSeen))
	}
}
