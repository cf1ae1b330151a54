package testenv

import (
	"bufio"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

// RawMiner is a hand-driven Stratum client for byte-level tests.
type RawMiner struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// Dial connects a raw client.
func Dial(t testing.TB, addr string) *RawMiner {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &RawMiner{t: t, conn: c, r: bufio.NewReaderSize(c, 64*1024)}
}

// Conn is the underlying connection.
func (m *RawMiner) Conn() net.Conn { return m.conn }

// Send writes one line (a newline is added).
func (m *RawMiner) Send(line string) {
	m.t.Helper()
	_ = m.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := m.conn.Write([]byte(line + "\n")); err != nil {
		m.t.Fatalf("send: %v", err)
	}
}

// Line reads the next line, failing the test after d.
func (m *RawMiner) Line(d time.Duration) string {
	m.t.Helper()
	_ = m.conn.SetReadDeadline(time.Now().Add(d))
	s, err := m.r.ReadString('\n')
	if err != nil {
		m.t.Fatalf("read: %v (partial %q)", err, s)
	}
	return strings.TrimRight(s, "\r\n")
}

// TryLine reads the next line or returns "" and the error.
func (m *RawMiner) TryLine(d time.Duration) (string, error) {
	_ = m.conn.SetReadDeadline(time.Now().Add(d))
	s, err := m.r.ReadString('\n')
	return strings.TrimRight(s, "\r\n"), err
}

// Msg is a decoded Stratum message.
type Msg struct {
	ID     json.RawMessage   `json:"id"`
	Method string            `json:"method"`
	Params []json.RawMessage `json:"params"`
	Result json.RawMessage   `json:"result"`
	Error  json.RawMessage   `json:"error"`
	Raw    string            `json:"-"`
}

// Next reads and decodes the next message.
func (m *RawMiner) Next(d time.Duration) Msg {
	m.t.Helper()
	line := m.Line(d)
	var msg Msg
	if err := json.Unmarshal([]byte(line), &msg); err != nil {
		m.t.Fatalf("bad JSON from agent: %q: %v", line, err)
	}
	msg.Raw = line
	return msg
}

// Until reads messages until pred matches one, returning it and everything before.
func (m *RawMiner) Until(d time.Duration, pred func(Msg) bool) (Msg, []Msg) {
	m.t.Helper()
	deadline := time.Now().Add(d)
	var seen []Msg
	for time.Now().Before(deadline) {
		msg := m.Next(time.Until(deadline))
		if pred(msg) {
			return msg, seen
		}
		seen = append(seen, msg)
	}
	m.t.Fatalf("no matching message within %v; saw %d", d, len(seen))
	return Msg{}, nil
}

// Str decodes a string param.
func (msg Msg) Str(i int) string {
	var s string
	if i < len(msg.Params) {
		_ = json.Unmarshal(msg.Params[i], &s)
	}
	return s
}

// Login subscribes and authorizes; it returns the extranonce1 and the first
// notify after authorization (with all messages seen on the way).
func (m *RawMiner) Login(user string, configure bool) (en1 string, notify Msg, seen []Msg) {
	m.t.Helper()
	if configure {
		m.Send(`{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]}`)
	}
	m.Send(`{"id":2,"method":"mining.subscribe","params":["testminer/1.0"]}`)
	sub, s1 := m.Until(10*time.Second, func(x Msg) bool { return string(x.ID) == "2" })
	var res []json.RawMessage
	if err := json.Unmarshal(sub.Result, &res); err != nil || len(res) != 3 {
		m.t.Fatalf("subscribe result %s", sub.Raw)
	}
	_ = json.Unmarshal(res[1], &en1)
	m.Send(`{"id":3,"method":"mining.authorize","params":["` + user + `","x"]}`)
	notify, s2 := m.Until(10*time.Second, func(x Msg) bool { return x.Method == "mining.notify" })
	seen = append(append(s1, sub), s2...)
	return en1, notify, seen
}
