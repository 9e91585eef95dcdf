package warewulfd

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
)

// MetricsPath serves counters in the Prometheus text format.
const MetricsPath = "/metrics"

// metrics are counters by stage; index stageCount counts requests that
// named no valid stage.
type metrics struct {
	requests [stageCount + 1]atomic.Int64
	bytes    [stageCount + 1]atomic.Int64
	errors   [stageCount + 1]atomic.Int64
	tftp     atomic.Int64
	tftpErrs atomic.Int64
}

func (m *metrics) observe(stage Stage, bytes int64, status int) {
	if stage < 0 || stage > stageCount {
		stage = stageCount
	}
	m.requests[stage].Add(1)
	m.bytes[stage].Add(bytes)
	if status >= 400 {
		m.errors[stage].Add(1)
	}
}

func (s *Server) serveMetrics(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	m := &s.metrics
	family := func(name, help string, v *[stageCount + 1]atomic.Int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		for i := range v {
			label := "other"
			if Stage(i) < stageCount {
				label = Stage(i).String()
			}
			fmt.Fprintf(w, "%s{stage=%q} %d\n", name, label, v[i].Load())
		}
	}
	family("warewulfd_http_requests_total", "HTTP requests by boot stage.", &m.requests)
	family("warewulfd_http_sent_bytes_total", "Bytes sent by boot stage.", &m.bytes)
	family("warewulfd_http_errors_total", "Responses with status 400 or more, by boot stage.", &m.errors)
	counter(w, "warewulfd_tftp_transfers_total", "TFTP transfers completed.", m.tftp.Load())
	counter(w, "warewulfd_tftp_errors_total", "TFTP requests refused or failed.", m.tftpErrs.Load())
	fmt.Fprintf(w, "# HELP warewulfd_nodes Nodes in nodes.conf.\n# TYPE warewulfd_nodes gauge\nwarewulfd_nodes %d\n", len(s.st.Load().nodes))
}

func counter(w io.Writer, name, help string, v int64) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
}
