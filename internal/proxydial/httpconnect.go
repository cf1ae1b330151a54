package proxydial

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// maxConnectReply bounds what a proxy may send before its CONNECT answer is
// complete; real answers are a few hundred bytes.
const maxConnectReply = 16 << 10

// httpConnect asks the HTTP proxy on conn for a tunnel to addr, with Basic
// auth when the URL carries a user. It returns the connection to use from
// then on: bytes the pool sent right after the proxy's answer may already
// sit in the reader and must not be lost.
func httpConnect(conn net.Conn, u *url.URL, addr string) (net.Conn, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", addr, addr)
	if u.User != nil {
		pass, _ := u.User.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + pass))
		fmt.Fprintf(&b, "Proxy-Authorization: Basic %s\r\n", cred)
	}
	b.WriteString("\r\n")
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return nil, fmt.Errorf("CONNECT request: %w", err)
	}
	br := bufio.NewReaderSize(&limited{r: conn, n: maxConnectReply}, 4096)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return nil, fmt.Errorf("CONNECT reply: %w", err)
	}
	// The body of a CONNECT reply is the tunnel itself on success, and is
	// not read on failure: the connection is closed anyway.
	switch {
	// 407 is the standard answer; some proxies (tinyproxy) send 401.
	case (resp.StatusCode == http.StatusProxyAuthRequired || resp.StatusCode == http.StatusUnauthorized) && u.User == nil:
		return nil, authErrorf("HTTP proxy requires a user and password (%d)", resp.StatusCode)
	case resp.StatusCode == http.StatusProxyAuthRequired || resp.StatusCode == http.StatusUnauthorized:
		return nil, authErrorf("HTTP proxy rejected the user/password (%d)", resp.StatusCode)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, fmt.Errorf("HTTP proxy answered CONNECT with %q", resp.Status)
	}
	if n := br.Buffered(); n > 0 {
		early, _ := br.Peek(n)
		return &prefixConn{Conn: conn, prefix: append([]byte(nil), early...)}, nil
	}
	return conn, nil
}

// limited stops a proxy that never ends its header block. It is only read
// through during the CONNECT exchange.
type limited struct {
	r net.Conn
	n int
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("CONNECT reply longer than %d bytes", maxConnectReply)
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= n
	return n, err
}

// prefixConn returns bytes read ahead during the CONNECT exchange before
// reading the socket again.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
