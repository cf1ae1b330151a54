// Package all links the built-in plugins into a binary: importing it runs
// their init functions, which register them by name. The core never imports
// a concrete plugin; the command does, through this package. The guide's
// example (plugins/example/sharelog) is left out on purpose: it shows how a
// plugin outside this list is linked in, with its own blank import.
package all

import (
	_ "github.com/btcagent/btcagent/plugins/allowlist"  // allow-list
	_ "github.com/btcagent/btcagent/plugins/asicboost"  // asicboost-guard
	_ "github.com/btcagent/btcagent/plugins/farmalert"  // farm-watch
	_ "github.com/btcagent/btcagent/plugins/poolroute"  // pool-route
	_ "github.com/btcagent/btcagent/plugins/sharecheck" // share-check
	_ "github.com/btcagent/btcagent/plugins/workername" // worker-name
)
