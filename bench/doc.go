// Package bench holds the lifecycle benchmark of the kayo provider
// (lifecycle_test.go) and, in noop/, the no-op provider that is one of its
// floors. Run it with scripts/bench.sh (`make bench`); it is a benchmark only
// and does nothing under plain `go test`.
package bench
