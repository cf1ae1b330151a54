package codec

import (
	"fmt"
	"strconv"
)

// Notify is a parsed mining.notify. The hex fields are kept as the pool sent
// them so that lines rebuilt from a Notify carry exactly the pool's bytes.
type Notify struct {
	JobID    string
	PrevHash string
	Coinb1   string
	Coinb2   string
	Branches []string
	Version  string
	NBits    string
	NTime    string
	Clean    bool
}

// NTimeValue is NTime as a number (validated by ParseNotify).
func (n *Notify) NTimeValue() uint32 { v, _ := ParseHex32([]byte(n.NTime)); return v }

// VersionValue is Version as a number.
func (n *Notify) VersionValue() uint32 { v, _ := ParseHex32([]byte(n.Version)); return v }

// NBitsValue is NBits as a number.
func (n *Notify) NBitsValue() uint32 { v, _ := ParseHex32([]byte(n.NBits)); return v }

// ParseNotify reads the nine mining.notify params and checks their shapes, so
// that a broken job is refused once at the upstream instead of being fanned
// out to thousands of miners.
func ParseNotify(r *Request) (*Notify, error) {
	if r.NParams < 9 {
		return nil, fmt.Errorf("codec: mining.notify needs 9 params, got %d", r.NParams)
	}
	str := func(i int, what string, hexLen int) (string, error) {
		s, err := r.Params[i].String()
		if err != nil {
			return "", fmt.Errorf("codec: mining.notify %s: %w", what, err)
		}
		if hexLen >= 0 {
			if (hexLen > 0 && len(s) != hexLen) || (len(s) > 0 && !IsHex(s)) {
				return "", fmt.Errorf("codec: mining.notify %s %q is not %d hex digits", what, s, hexLen)
			}
		}
		return s, nil
	}
	n := &Notify{}
	var err error
	if n.JobID, err = str(0, "job id", -1); err != nil {
		return nil, err
	}
	if n.JobID == "" {
		return nil, fmt.Errorf("codec: mining.notify has an empty job id")
	}
	if n.PrevHash, err = str(1, "prevhash", 64); err != nil {
		return nil, err
	}
	if n.Coinb1, err = str(2, "coinb1", 0); err != nil {
		return nil, err
	}
	if n.Coinb2, err = str(3, "coinb2", 0); err != nil {
		return nil, err
	}
	br := r.Params[4]
	if br.Kind != KindArray {
		return nil, fmt.Errorf("codec: mining.notify merkle branches must be an array")
	}
	if n.Branches, err = scanStringArray(br.Raw); err != nil {
		return nil, err
	}
	if n.Version, err = str(5, "version", 8); err != nil {
		return nil, err
	}
	if n.NBits, err = str(6, "nbits", 8); err != nil {
		return nil, err
	}
	if n.NTime, err = str(7, "ntime", 8); err != nil {
		return nil, err
	}
	if r.Params[8].Kind != KindBool {
		return nil, fmt.Errorf("codec: mining.notify clean_jobs must be a bool")
	}
	n.Clean = r.Params[8].Raw[0] == 't'
	return n, nil
}

// scanStringArray reads an already validated JSON array of branch hashes.
func scanStringArray(raw []byte) ([]string, error) {
	s := scanner{b: raw}
	s.i = 1 // past '['
	out := []string{}
	for {
		s.ws()
		if s.peek() == ']' || s.i >= len(s.b) {
			return out, nil
		}
		v, err := s.value()
		if err != nil {
			return nil, err
		}
		str, err := v.String()
		if err != nil || len(str) != 64 || !IsHex(str) {
			return nil, fmt.Errorf("codec: mining.notify merkle branch %d is not 64 hex digits", len(out))
		}
		out = append(out, str)
		s.ws()
		if s.peek() == ',' {
			s.i++
		}
	}
}

// AppendLine appends the notify as a JSON line for miners. coinb1Suffix is
// appended to coinb1: the agent puts its upstream extranonce1 there, so each
// miner's EN1 and EN2 land exactly where the pool's EN2 will be (docs/PROTOCOL.md §4.1).
func (n *Notify) AppendLine(dst []byte, coinb1Suffix string, clean bool) []byte {
	dst = append(dst, `{"id":null,"method":"mining.notify","params":[`...)
	dst = AppendJSONString(dst, n.JobID)
	dst = append(dst, `,"`...)
	dst = append(dst, n.PrevHash...)
	dst = append(dst, `","`...)
	dst = append(dst, n.Coinb1...)
	dst = append(dst, coinb1Suffix...)
	dst = append(dst, `","`...)
	dst = append(dst, n.Coinb2...)
	dst = append(dst, `",[`...)
	for i, b := range n.Branches {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, b...)
		dst = append(dst, '"')
	}
	dst = append(dst, `],"`...)
	dst = append(dst, n.Version...)
	dst = append(dst, `","`...)
	dst = append(dst, n.NBits...)
	dst = append(dst, `","`...)
	dst = append(dst, n.NTime...)
	dst = append(dst, `",`...)
	dst = strconv.AppendBool(dst, clean)
	return append(dst, "]}\n"...)
}
