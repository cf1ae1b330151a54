package proxydial

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
)

// ErrAuth marks a proxy that refused the credentials (or asked for some
// that the URL does not carry); errors.Is finds it in a dial's error.
var ErrAuth = errors.New("proxy refused the credentials")

// authError is an ErrAuth with its own wording, so that the message does
// not repeat the summary.
type authError struct{ msg string }

func (e *authError) Error() string        { return e.msg }
func (e *authError) Is(target error) bool { return target == ErrAuth }

func authErrorf(format string, args ...any) error {
	return &authError{msg: fmt.Sprintf(format, args...)}
}

const (
	socksVersion   = 5
	socksNoAuth    = 0x00
	socksUserPass  = 0x02
	socksNoMethods = 0xff
	socksConnect   = 0x01
	socksIPv4      = 0x01
	socksDomain    = 0x03
	socksIPv6      = 0x04
)

// socksReplies are RFC 1928 §6 reply codes.
var socksReplies = map[byte]string{
	1: "general SOCKS server failure",
	2: "connection not allowed by ruleset",
	3: "network unreachable",
	4: "host unreachable",
	5: "connection refused by the pool",
	6: "TTL expired",
	7: "command not supported",
	8: "address type not supported",
}

// socks5Connect asks the SOCKS5 server on conn for a tunnel to addr. A host
// name goes to the proxy unresolved, so the pool's name is looked up where
// the proxy is (and a local resolver that cannot see it does not matter).
func socks5Connect(conn net.Conn, u *url.URL, addr string) error {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("pool address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("pool address %q: bad port", addr)
	}
	user, pass := "", ""
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}

	// Greeting: offer no-auth, and user/password when the URL has them.
	greet := []byte{socksVersion, 1, socksNoAuth}
	if u.User != nil {
		greet = []byte{socksVersion, 2, socksNoAuth, socksUserPass}
	}
	if _, err := conn.Write(greet); err != nil {
		return fmt.Errorf("SOCKS5 greeting: %w", err)
	}
	var choice [2]byte
	if _, err := io.ReadFull(conn, choice[:]); err != nil {
		return fmt.Errorf("SOCKS5 greeting: %w", err)
	}
	if choice[0] != socksVersion {
		return fmt.Errorf("not a SOCKS5 proxy (version byte %d)", choice[0])
	}
	switch choice[1] {
	case socksNoAuth:
	case socksUserPass:
		if u.User == nil {
			return fmt.Errorf("SOCKS5 proxy chose user/password auth that was not offered")
		}
		if err := socks5Auth(conn, user, pass); err != nil {
			return err
		}
	case socksNoMethods:
		if u.User == nil {
			return authErrorf("SOCKS5 proxy requires a user and password")
		}
		return authErrorf("SOCKS5 proxy accepts none of the offered methods (no auth, user/password)")
	default:
		return fmt.Errorf("SOCKS5 proxy chose unsupported auth method %d", choice[1])
	}

	req := []byte{socksVersion, socksConnect, 0}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() || ip.Is4In6() {
			b := ip.Unmap().As4()
			req = append(append(req, socksIPv4), b[:]...)
		} else {
			b := ip.As16()
			req = append(append(req, socksIPv6), b[:]...)
		}
	} else {
		if len(host) > 255 {
			return fmt.Errorf("pool host name is longer than SOCKS5 allows (255 bytes)")
		}
		req = append(append(req, socksDomain, byte(len(host))), host...)
	}
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("SOCKS5 connect request: %w", err)
	}
	var head [4]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return fmt.Errorf("SOCKS5 connect reply: %w", err)
	}
	if head[0] != socksVersion {
		return fmt.Errorf("SOCKS5 connect reply has version byte %d", head[0])
	}
	if head[1] != 0 {
		msg, ok := socksReplies[head[1]]
		if !ok {
			msg = fmt.Sprintf("reply code %d", head[1])
		}
		return fmt.Errorf("SOCKS5 proxy could not reach the pool: %s", msg)
	}
	// The bound address follows; its length depends on its type.
	var skip int
	switch head[3] {
	case socksIPv4:
		skip = 4
	case socksIPv6:
		skip = 16
	case socksDomain:
		var n [1]byte
		if _, err := io.ReadFull(conn, n[:]); err != nil {
			return fmt.Errorf("SOCKS5 connect reply: %w", err)
		}
		skip = int(n[0])
	default:
		return fmt.Errorf("SOCKS5 connect reply has address type %d", head[3])
	}
	if _, err := io.ReadFull(conn, make([]byte, skip+2)); err != nil {
		return fmt.Errorf("SOCKS5 connect reply: %w", err)
	}
	return nil
}

// socks5Auth runs the RFC 1929 username/password sub-negotiation.
func socks5Auth(conn net.Conn, user, pass string) error {
	if len(user) > 255 || len(pass) > 255 {
		return authErrorf("SOCKS5 user or password longer than 255 bytes")
	}
	b := make([]byte, 0, 3+len(user)+len(pass))
	b = append(b, 1, byte(len(user)))
	b = append(b, user...)
	b = append(b, byte(len(pass)))
	b = append(b, pass...)
	if _, err := conn.Write(b); err != nil {
		return fmt.Errorf("SOCKS5 auth: %w", err)
	}
	var st [2]byte
	if _, err := io.ReadFull(conn, st[:]); err != nil {
		// Some servers close instead of answering a bad password.
		return authErrorf("SOCKS5 proxy closed the connection during user/password auth (%v)", err)
	}
	if st[1] != 0 {
		return authErrorf("SOCKS5 proxy rejected the user/password")
	}
	return nil
}
