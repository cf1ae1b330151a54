module github.com/btcagent/btcagent

go 1.26.8
