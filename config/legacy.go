package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// The original btccom btcagent read a JSON file (agent_conf.json). These
// functions carry such a file over, so a farm can swap the binary first and
// migrate the file later. Where the file leaves out a key that changes what
// miners experience (ASICBoost guard, outage behaviour, TLS verification) the
// old agent's default is used, so the converted agent behaves as the old one
// did; tuning knobs left out get this agent's defaults.

const (
	legacyIPFormat = "{1}x{2}x{3}x{4}"

	// PluginWorkerName and PluginASICBoostGuard are the plugins legacy
	// options map to; PluginShareCheck is added to every converted file.
	PluginWorkerName     = "worker-name"
	PluginASICBoostGuard = "asicboost-guard"
	PluginShareCheck     = "share-check"
)

// LoadLegacyJSON reads a legacy agent_conf.json. The warnings name keys that
// were ignored: unknown ones, and ones understood but not supported.
func LoadLegacyJSON(path string) (*Config, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	c, warns, err := fromLegacy(data, path)
	if err != nil {
		return nil, warns, err
	}
	if err := c.setPath(path); err != nil {
		return nil, warns, err
	}
	return c, warns, nil
}

// ConvertLegacyJSON turns a legacy agent_conf.json into equivalent TOML.
// Warnings are returned and also written as comments at the top.
func ConvertLegacyJSON(data []byte, name string) ([]byte, []string, error) {
	c, warns, err := fromLegacy(data, name)
	if err != nil {
		return nil, warns, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Converted from the legacy btcagent file %s.\n", name)
	fmt.Fprintf(&b, "# Settings left out have their defaults; see config.toml for every key.\n")
	fmt.Fprintf(&b, "# Local share checks (share-check) are on; delete its [[plugins]] table to turn them off.\n")
	for _, w := range warns {
		fmt.Fprintf(&b, "# warning: %s\n", oneLine(w))
	}
	b.WriteByte('\n')
	if err := c.WriteTOML(&b); err != nil {
		return nil, warns, err
	}
	return b.Bytes(), warns, nil
}

// legacy accumulates the conversion of one file.
type legacy struct {
	file  string
	warns []string
	err   error
}

func (lg *legacy) warn(format string, args ...any) {
	lg.warns = append(lg.warns, fmt.Sprintf(format, args...))
}

func (lg *legacy) fail(format string, args ...any) {
	if lg.err == nil {
		lg.err = &Error{File: lg.file, Msg: fmt.Sprintf(format, args...)}
	}
}

func (lg *legacy) str(m map[string]any, key string) (string, bool) {
	v, ok := m[key]
	if !ok {
		return "", false
	}
	s, isStr := v.(string)
	if !isStr {
		lg.fail("legacy key %q must be a string, got %s", key, jsonType(v))
	}
	return s, isStr
}

func (lg *legacy) boolean(m map[string]any, key string, dflt bool) bool {
	v, ok := m[key]
	if !ok {
		return dflt
	}
	b, isBool := v.(bool)
	if !isBool {
		lg.fail("legacy key %q must be true or false, got %s", key, jsonType(v))
		return dflt
	}
	return b
}

func (lg *legacy) integer(m map[string]any, key string) (int, bool) {
	v, ok := m[key]
	if !ok {
		return 0, false
	}
	n, err := jsonInt(v)
	if err != nil {
		lg.fail("legacy key %q: %v", key, err)
		return 0, false
	}
	return n, true
}

func (lg *legacy) seconds(m map[string]any, key string, dst *time.Duration) {
	if n, ok := lg.integer(m, key); ok {
		*dst = time.Duration(n) * time.Second
	}
}

func jsonInt(v any) (int, error) {
	num, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("must be a number, got %s", jsonType(v))
	}
	n, err := num.Int64()
	if err != nil || n < -1<<31 || n > 1<<31-1 {
		return 0, fmt.Errorf("%s is not a whole number in range", num)
	}
	return int(n), nil
}

func jsonType(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case json.Number:
		return "number " + x.String()
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// Keys of the legacy file, by how they are handled.
var (
	legacyAdvancedKeys = []string{
		"pool_connection_number_per_subaccount",
		"pool_connection_dial_timeout_seconds",
		"pool_connection_read_timeout_seconds",
		"fake_job_notify_interval_seconds",
		"tls_skip_certificate_verify",
	}
	legacyTopKeys = []string{
		"agent_type", "agent_listen_ip", "agent_listen_port", "pools",
		"always_keep_downconn", "disconnect_when_lost_asicboost",
		"use_ip_as_worker_name", "ip_worker_name_format", "fixed_worker_name",
		"submit_response_from_server", "pool_use_tls", "multi_user_mode",
		"proxy", "use_proxy", "direct_connect_with_proxy", "direct_connect_after_proxy",
		"use_iocp", "http_debug", "advanced",
	}
	// Understood, not supported, and said so whenever present: they tuned
	// internals of the old implementation that have no counterpart here.
	legacyUnsupportedAdvanced = []string{"message_queue_size", "bitcoin_default_version_mask"}
)

func fromLegacy(data []byte, name string) (*Config, []string, error) {
	m, err := decodeJSON(data, name)
	if err != nil {
		return nil, nil, err
	}
	lg := &legacy{file: name}
	c := Default()

	if t, ok := lg.str(m, "agent_type"); ok && !strings.EqualFold(t, "btc") {
		lg.fail("legacy agent_type %q is not supported: this agent serves Bitcoin (\"btc\") only", t)
	}

	// Advanced options were at the top level in some versions and under
	// "advanced" in later ones; accept both, the nested one wins.
	adv := map[string]any{}
	for _, k := range legacyAdvancedKeys {
		if v, ok := m[k]; ok {
			adv[k] = v
		}
	}
	if raw, ok := m["advanced"]; ok {
		am, isObj := raw.(map[string]any)
		if !isObj {
			lg.fail("legacy key \"advanced\" must be an object, got %s", jsonType(raw))
		}
		for _, k := range slices.Sorted(maps.Keys(am)) {
			v := am[k]
			switch {
			case slices.Contains(legacyAdvancedKeys, k):
				adv[k] = v
			case slices.Contains(legacyUnsupportedAdvanced, k):
				lg.warn("advanced.%s is not supported and was ignored (it tuned internals of the old agent)", k)
			default:
				lg.warn("unknown legacy key advanced.%s was ignored", k)
			}
		}
	}

	l := Listener{Address: "0.0.0.0"}
	if ip, ok := lg.str(m, "agent_listen_ip"); ok && ip != "" {
		l.Address = ip
	}
	if port, ok := lg.integer(m, "agent_listen_port"); ok {
		l.Port = port
	} else if lg.err == nil {
		lg.fail("legacy key \"agent_listen_port\" is missing")
	}

	useTLS := lg.boolean(m, "pool_use_tls", false)
	// The old agent skipped certificate checks unless told otherwise.
	skipVerify := lg.boolean(adv, "tls_skip_certificate_verify", true)
	if useTLS && skipVerify {
		lg.warn("pool TLS certificates are not verified (legacy default); set tls_skip_verify = false if the pool has a valid certificate")
	}
	multi := lg.boolean(m, "multi_user_mode", false)
	lg.pools(m, &l, useTLS, useTLS && skipVerify, multi)

	if n, ok := lg.integer(adv, "pool_connection_number_per_subaccount"); ok {
		c.Upstream.Connections = n
	}
	if multi {
		lg.multiUser(&l, c.Upstream.Connections)
	}
	lg.seconds(adv, "pool_connection_dial_timeout_seconds", &c.Upstream.DialTimeout)
	lg.seconds(adv, "pool_connection_read_timeout_seconds", &c.Upstream.DeadAfter)
	lg.seconds(adv, "fake_job_notify_interval_seconds", &c.Outage.FakeJobInterval)

	// The old agent dropped miners when all pools were gone unless told to
	// keep them busy with fake jobs.
	if lg.boolean(m, "always_keep_downconn", false) {
		c.Outage.Policy = OutageFake
	} else {
		c.Outage.Policy = OutageDisconnect
	}
	c.Upstream.SubmitResponse = lg.boolean(m, "submit_response_from_server", false)
	lg.proxies(m, &c.Upstream)

	// Safe default the old agent did not have: stale, duplicate and
	// low-difficulty shares are answered here and never cost uplink or pool
	// rejects. First, so the plugins after it see good shares only.
	c.Plugins = append(c.Plugins, NewPluginSpec(PluginShareCheck, nil))
	if spec, ok := lg.workerName(m); ok {
		c.Plugins = append(c.Plugins, spec)
	}
	if lg.boolean(m, "disconnect_when_lost_asicboost", true) {
		c.Plugins = append(c.Plugins, NewPluginSpec(PluginASICBoostGuard, nil))
	}
	for i := range c.Plugins {
		c.Plugins[i].Index = i
		c.Plugins[i].file = name
	}

	lg.unsupported(m)
	c.Listen = []Listener{l}
	if lg.err != nil {
		return nil, lg.warns, lg.err
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		if e, ok := err.(*Error); ok {
			e.File = name
			e.Msg = "after conversion from legacy JSON: " + e.Msg
		}
		return nil, lg.warns, err
	}
	return c, lg.warns, nil
}

// pools imports the failover list. In multi-user mode the sub-accounts in
// it are ignored, as the old agent ignored them: the miners' names choose.
func (lg *legacy) pools(m map[string]any, l *Listener, useTLS, skipVerify, multi bool) {
	raw, ok := m["pools"]
	if !ok {
		lg.fail("legacy key \"pools\" is missing")
		return
	}
	list, isArr := raw.([]any)
	if !isArr || len(list) == 0 {
		lg.fail("legacy key \"pools\" must be a non-empty array of [host, port, sub-account]")
		return
	}
	for i, e := range list {
		entry, ok := e.([]any)
		if !ok || len(entry) < 2 || len(entry) > 3 {
			lg.fail("legacy pools[%d] must be [host, port, sub-account]", i)
			return
		}
		host, ok := entry[0].(string)
		if !ok {
			lg.fail("legacy pools[%d]: host must be a string, got %s", i, jsonType(entry[0]))
			return
		}
		port, err := jsonInt(entry[1])
		if err != nil {
			lg.fail("legacy pools[%d]: port %v", i, err)
			return
		}
		var user string
		if len(entry) == 3 {
			if user, ok = entry[2].(string); !ok {
				lg.fail("legacy pools[%d]: sub-account must be a string, got %s", i, jsonType(entry[2]))
				return
			}
		}
		p := Pool{Host: host, Port: port, TLS: useTLS, TLSSkipVerify: skipVerify}
		switch {
		case multi:
		case i == 0:
			if user == "" {
				lg.fail("legacy pools[0] has no sub-account; one is required unless multi_user_mode is true")
				return
			}
			l.PoolUser = user
		case user != "" && user != l.PoolUser:
			p.User = user
		}
		l.Pools = append(l.Pools, p)
	}
}

// multiUser carries multi_user_mode over: every sub-account gets as many
// links as the old agent opened per sub-account, and no cap below the
// highest, since the old agent had none. It closed a sub-account's links
// as soon as its last miner left; the grace default here only spares
// reconnecting miners a new login, so it is kept.
func (lg *legacy) multiUser(l *Listener, perSubAccount int) {
	l.MultiUser = true
	l.SubAccounts = DefaultSubAccounts()
	l.SubAccounts.Connections = perSubAccount
	l.SubAccounts.Max = MaxSubAccountsLimit
	lg.warn("multi_user_mode: a miner whose name has no dot (no sub-account) is refused; the old agent took the whole name as the sub-account")
}

// workerName maps the three worker-name options onto the worker-name
// plugin. As in the old agent, a fixed name wins over the IP-derived one.
func (lg *legacy) workerName(m map[string]any) (PluginSpec, bool) {
	fixed, _ := lg.str(m, "fixed_worker_name")
	useIP := lg.boolean(m, "use_ip_as_worker_name", false)
	format, hasFormat := lg.str(m, "ip_worker_name_format")
	if !hasFormat || format == "" {
		format = legacyIPFormat
	}
	switch {
	case fixed != "":
		if useIP {
			lg.warn("use_ip_as_worker_name is ignored because fixed_worker_name is set (as in the old agent)")
		}
		return NewPluginSpec(PluginWorkerName, map[string]any{"mode": "fixed", "fixed_name": fixed}), true
	case useIP:
		return NewPluginSpec(PluginWorkerName, map[string]any{"mode": "ip", "ip_format": format}), true
	}
	return PluginSpec{}, false
}

// unsupported warns about keys that are understood but have no effect here,
// and about keys that are not known at all.
func (lg *legacy) unsupported(m map[string]any) {
	if lg.boolean(m, "use_iocp", false) {
		lg.warn("use_iocp is not needed and was ignored")
	}
	if raw, ok := m["http_debug"]; ok {
		if hm, isObj := raw.(map[string]any); !isObj || lg.boolean(hm, "enable", false) {
			lg.warn("http_debug is not supported and was ignored; status and metrics are served on http_listen")
		}
	}
	var unknown []string
	for k := range m {
		if !slices.Contains(legacyTopKeys, k) && !slices.Contains(legacyAdvancedKeys, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		lg.warn("unknown legacy key %q was ignored", k)
	}
}

// decodeJSON parses the legacy file, reporting syntax errors with a line and
// column like TOML errors.
func decodeJSON(data []byte, name string) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	err := dec.Decode(&m)
	if err == nil {
		if _, extra := dec.Token(); !errors.Is(extra, io.EOF) {
			return nil, &Error{File: name, Msg: "JSON syntax error: data after the top-level object"}
		}
		if m == nil {
			return nil, &Error{File: name, Msg: "JSON: the file must hold an object"}
		}
		return m, nil
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, col := lineCol(data, se.Offset)
		return nil, &Error{File: name, Line: line, Col: col, Msg: "JSON syntax error: " + se.Error()}
	case errors.As(err, &te):
		return nil, &Error{File: name, Msg: "JSON: the file must hold an object, not " + te.Value}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return nil, &Error{File: name, Msg: "JSON syntax error: unexpected end of file"}
	}
	return nil, &Error{File: name, Msg: "JSON: " + err.Error()}
}

func lineCol(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, max(col, 1)
}
