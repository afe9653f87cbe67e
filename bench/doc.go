// Package bench holds the lifecycle benchmark of the kayo provider
// (lifecycle_test.go), the VM benchmark (vm_test.go) and, in noop/, the
// no-op provider that is their floor. Run them with scripts/bench.sh
// (`make bench`); they are benchmarks only and do nothing under plain
// `go test`.
//
// # The VM benchmark's scenarios
//
// Every scenario runs in the same rounds, interleaved, so that each ratio
// comes from one run holding both of its sides:
//
//   - noop_vm: kayo_virtual_machine's schema on a provider that does
//     nothing, the floor of issue 18 (kayo/noop_vm ≤ 1.25×);
//   - kayo: the provider on the embedded database, its node work (VM
//     files, simulator calls) done by its in-process executors;
//   - kayo_agents: the same database and VMs, the node work done by 16
//     node agents (the work executors `kayoctl agent` runs: heartbeat,
//     poke socket, polling), one per host, in a process of their own;
//   - kayo_etcd_agents: the same with the database on etcd (one local
//     member, internal/etcdtest), as a cluster of real hosts runs; only
//     when an etcd binary is found, or when BENCH_SCENARIOS names it.
//
// The comparison agents/embedded is kayo_agents/kayo: one database (the
// embedded one), the same configuration and VMs, the same engine code for
// the work itself; what differs is only where the work runs and how it
// gets there (a request record, a poke, the result record, instead of an
// in-process call), so the ratio is what moving node work to agents
// costs. On etcd the provider must have agents (an engine on etcd runs no
// node work itself), so there is no embedded side on etcd to compare
// with; kayo_etcd_agents/kayo adds the database's own cost (network round
// trips instead of a local file) and is printed for reference.
//
// The agents are started before a round's timed phases and stopped after
// its destroy, untimed; they run in the benchmark's process, so their CPU
// is not in the CPU table (which counts the CLI and its plugins only).
package bench
