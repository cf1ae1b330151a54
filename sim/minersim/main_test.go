package minersim

import (
	"os"
	"testing"

	"github.com/lesismal/nbio/logging"
)

func TestMain(m *testing.M) {
	if os.Getenv(responderEnv) != "" {
		os.Exit(runResponder())
	}
	// nbio logs engine start/stop lines to stdout; they drown test output.
	logging.SetLevel(logging.LevelWarn)
	os.Exit(m.Run())
}
