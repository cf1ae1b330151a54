# btcagent — build, test and measure. `make help` lists the targets.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin
CMDS    := btcagent poolsim minersim agentbench

.PHONY: help build test race vet fuzz bench microbench demo cross clean

help:
	@echo "build       build $(CMDS) into $(BIN)/"
	@echo "test        the CI test suite (go vet + go test -race ./...)"
	@echo "fuzz        20 s per fuzz target"
	@echo "microbench  hot-path micro-benchmarks (-benchmem)"
	@echo "bench       end-to-end benchmark: poolsim + minersim + the agent as its own process"
	@echo "demo        pool simulator + agent + CPU miners on this machine"
	@echo "cross       release binaries for routers, Raspberry Pi, Windows, macOS"

build:
	@mkdir -p $(BIN)
	@for c in $(CMDS); do [ -d cmd/$$c ] && $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/$$c ./cmd/$$c || exit 1; done

vet:
	$(GO) mod tidy -diff            # go.mod lists exactly what the code imports
	$(GO) vet ./...
	$(GO) vet -tags measure ./...   # the opt-in measurements compile too

test: vet
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -race -count=1 -tags netio_portable ./actors/netio  # the non-Linux I/O fallback, on Linux
	$(GO) test -race -count=1 -tags netio_portable -run 'Reload|Disconnect' ./actors/agent  # ...under the agent
	$(GO) test -count=1 -run AllocatesNothing ./actors/upstream    # allocation counts mean nothing under -race

race: test

fuzz:
	$(GO) test ./codec -run '^$$' -fuzz '^FuzzScanRequest$$' -fuzztime 20s
	$(GO) test ./codec -run '^$$' -fuzz '^FuzzDecodeFrame$$' -fuzztime 20s
	@for t in $$($(GO) test ./actors/miner -list '^Fuzz' 2>/dev/null | grep ^Fuzz); do \
		$(GO) test ./actors/miner -run '^$$' -fuzz "^$$t$$" -fuzztime 20s || exit 1; done

microbench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./codec ./actors/... ./plugins/...

bench: build
	$(BIN)/agentbench -bin $(BIN) -miners $${MINERS:-1000,10000} -window $${WINDOW:-120s} -runs $${RUNS:-1} -out docs/bench-results.json -md docs/BENCHMARKS.md

demo:
	$(GO) run ./cmd/btcagent demo

# Release binaries. OpenWrt routers: mipsle softfloat and arm; Raspberry Pi: arm64 and armv7.
cross:
	@mkdir -p dist
	GOOS=linux   GOARCH=amd64                  $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o dist/btcagent-linux-amd64 ./cmd/btcagent
	GOOS=linux   GOARCH=arm64                  $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o dist/btcagent-linux-arm64 ./cmd/btcagent
	GOOS=linux   GOARCH=arm GOARM=7            $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o dist/btcagent-linux-armv7 ./cmd/btcagent
	GOOS=linux   GOARCH=arm GOARM=5            $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o dist/btcagent-linux-armv5 ./cmd/btcagent
	GOOS=linux   GOARCH=mipsle GOMIPS=softfloat $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o dist/btcagent-linux-mipsle-softfloat ./cmd/btcagent
	GOOS=windows GOARCH=amd64                  $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o dist/btcagent-windows-amd64.exe ./cmd/btcagent
	GOOS=darwin  GOARCH=arm64                  $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o dist/btcagent-darwin-arm64 ./cmd/btcagent
	@ls -l dist/

clean:
	rm -rf $(BIN) dist
