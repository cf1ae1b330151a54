package minersim

import (
	"os"
	"testing"

	"github.com/lesismal/nbio/logging"
)

// responderEnv makes the test binary a Stratum responder for the farm
// measurement (measure_test.go, build tag measure), which sets responder.
const responderEnv = "MINERSIM_RESPONDER"

var responder func() int

func TestMain(m *testing.M) {
	if responder != nil && os.Getenv(responderEnv) != "" {
		os.Exit(responder())
	}
	// nbio logs engine start/stop lines to stdout; they drown test output.
	logging.SetLevel(logging.LevelWarn)
	os.Exit(m.Run())
}
