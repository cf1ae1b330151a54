//go:build !linux

package bench

import (
	"fmt"
	"os"
)

// ServeFloorReader needs epoll; elsewhere the floor is not measured and
// MeasureFloor fails with the reader's message.
func ServeFloorReader() int {
	fmt.Fprintln(os.Stdout, "error the floor reader needs Linux (epoll)")
	return 1
}
