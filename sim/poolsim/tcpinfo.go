package poolsim

import (
	"cmp"
	"slices"
	"time"
)

// ConnTCP is the kernel's view of one pool connection (TCP_INFO), for
// measuring segments per second on the pool link.
type ConnTCP struct {
	ID            uint64        `json:"id"`
	Remote        string        `json:"remote"`
	Agent         bool          `json:"agent"`
	SegsIn        uint64        `json:"segs_in"`
	SegsOut       uint64        `json:"segs_out"`
	DataSegsIn    uint64        `json:"data_segs_in"`
	DataSegsOut   uint64        `json:"data_segs_out"`
	BytesReceived uint64        `json:"bytes_received"`
	BytesAcked    uint64        `json:"bytes_acked"`
	TotalRetrans  uint64        `json:"total_retrans"`
	RTT           time.Duration `json:"rtt"`
}

// TCPInfo reads TCP_INFO for every open connection, sorted by ID. It is
// empty on systems without TCP_INFO support (see tcpinfo_linux.go).
func (p *Pool) TCPInfo() []ConnTCP {
	p.mu.Lock()
	conns := make([]*conn, 0, len(p.conns))
	for _, c := range p.conns {
		conns = append(conns, c)
	}
	agent := make(map[*conn]bool, len(conns))
	for _, c := range conns {
		agent[c] = c.agent
	}
	p.mu.Unlock()
	out := make([]ConnTCP, 0, len(conns))
	for _, c := range conns {
		ti, ok := readTCPInfo(c)
		if !ok {
			continue
		}
		ti.ID, ti.Remote, ti.Agent = c.id, c.remote, agent[c]
		out = append(out, ti)
	}
	slices.SortFunc(out, func(a, b ConnTCP) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
