package config

import (
	"fmt"
	"strings"
)

// Error is one configuration problem. It prints as a single line,
// "file:line: message" (or "file:line:col: ..." for syntax errors), so that
// editors can jump to it and log collectors keep it whole.
type Error struct {
	File string // as given to Load/Parse; empty when unknown
	Line int    // 1-based; 0 when unknown
	Col  int    // 1-based; only set for syntax errors
	Msg  string

	path keyPath // what the message is about, to find Line after the fact
}

func (e *Error) Error() string {
	msg := oneLine(e.Msg)
	switch {
	case e.File == "" && e.Line == 0:
		return msg
	case e.Line == 0:
		return e.File + ": " + msg
	case e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, msg)
	default:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, msg)
	}
}

// oneLine keeps multi-line text (from a library or a user's value) from
// breaking the one-line promise.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(s)), " ")
}

// locate fills File and Line of err (if it is an *Error without them).
func locate(err error, file string, pos positions) error {
	e, ok := err.(*Error)
	if !ok {
		return err
	}
	if e.File == "" {
		e.File = file
	}
	if e.Line == 0 && e.path != nil {
		e.Line = pos.line(e.path)
	}
	return e
}

func errorAt(p keyPath, format string, args ...any) *Error {
	return &Error{Msg: fmt.Sprintf(format, args...), path: p}
}
