package main

import (
	"bytes"
	"strings"
	"testing"
)

// "poolsim -h" succeeds and documents every flag.
func TestHelpListsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-h"}, &out); err != nil {
		t.Fatalf("-h: %v", err)
	}
	for _, name := range []string{
		"listen", "notify-interval", "block-every", "branches", "validate", "version-mask", "en2-size",
		"default-diff", "fixed-diff", "json-diff", "vardiff", "share-target", "subres", "stats-file",
		"stats-interval", "stats-addr", "write-timeout", "seed", "log-level",
		"sv2-listen", "sv2-authority-secret", "sv2-cert-validity",
	} {
		if !strings.Contains(out.String(), "  -"+name+" ") && !strings.Contains(out.String(), "  -"+name+"\n") {
			t.Errorf("flag -%s missing from the help:\n%s", name, out.String())
		}
	}
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"-no-such-flag"},
		{"stray"},
		{"-log-level", "loud"},
		{"-listen", "127.0.0.1:0", "-validate", "fast"},
	} {
		var out bytes.Buffer
		if err := run(args, &out); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
