// Command kayoctl is the operator CLI of a kayo cluster: it reads and
// steers the same cluster database (data_dir) the Terraform provider uses.
//
//	kayoctl [--data-dir DIR] COMMAND [flags]
//
// Commands: status, events, quorum, vm list, volume check, volume mount, backup FILE,
// restore FILE, plan review, state orphans, host fail|recover NAME (lab), and agent --node NAME, the
// long-running node agent. Flags may follow positional arguments. Exit codes: 0 ok, 1
// error, 2 usage.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usageText = `kayoctl: operator CLI of a kayo cluster

Usage:
  kayoctl [--data-dir DIR] [--etcd-endpoints URLS] [--lock-timeout 30s] COMMAND [flags]

Commands:
  status [--cluster NAME] [--json]     clusters and their nodes: state, votes, quorum, memory, heartbeats
  events [--cluster NAME] [--kind K] [--json]
                                       the append-only event history, in commit (revision) order
  quorum [--cluster NAME] [--json]     quorum configuration and vote figures per cluster
  vm list [--cluster NAME] [--json]    VMs: owner node and fencing token, pin, status, VHD, last migration
  volume check (UUID | CLUSTER/LETTER | --device PATH) [--json]
                                       verify every Kayo FS invariant (read-only); exit 1 on problems
  volume mount (UUID | CLUSTER/LETTER) --node NAME DIR
                                       mount the volume at the empty directory DIR through FUSE as
                                       node NAME (root, /dev/fuse); runs until SIGINT/SIGTERM or umount
  volume cp LOCAL (UUID | CLUSTER/LETTER):PATH
                                       put a template VHD (checked on the way in) or an ISO on the volume,
                                       as a kayo_volume_file does
  volume rm (UUID | CLUSTER/LETTER):PATH
                                       delete such a file; refused while VMs use it, naming them
  backup FILE                          a consistent copy of the cluster database, taken online, checked;
                                       on etcd an etcd snapshot (restore it with etcdutl snapshot restore)
  restore FILE [--force]               check the backup FILE and put it in place of the embedded database;
                                       an intact database is replaced only with --force (kept next to it)
  plan review PLAN.json [--format table|markdown|json] [--deny CATEGORIES] [--no-database]
                                       what a plan (terraform show -json) does to the clusters:
                                       migrations, replacements, formats, nodes, quorum, maintenance;
                                       exit 3 when a --deny category is present
  cluster validate NAME [--json]       the validation report now, from the declared hosts and what their
                                       agents report and probe; exit 1 when a test fails
  state orphans (--state terraform.tfstate | --state-json FILE)... [--cluster NAME] [--json]
                                       the cluster objects no state holds (an apply killed after
                                       creating them), as import {} blocks that adopt them: save the
                                       output as a .tf file and apply. --state-json reads terraform
                                       show -json of the state or of a saved plan (whose planned
                                       creations give each object its address); both repeat
  host fail NAME                       lab: declare a host down, as if it crashed
  host recover NAME                    lab: declare a failed host up again
  agent --node NAME [--interval 1s] [--lease 3×interval] [--migration-address 127.0.0.1]
        [--report-facts=true] [--probe-port 3343] [--clock-skew 0s]
                                       the node agent: heartbeats; the elected leader declares
                                       silent nodes down (and up again); reports its machine and
                                       probes the other nodes on every cluster network (and
                                       measures its clock against theirs; --clock-skew: tests);
                                       runs until SIGINT/SIGTERM

The data directory is --data-dir, else $KAYO_DATA_DIR, else .kayo. With
--etcd-endpoints (or $KAYO_ETCD_ENDPOINTS and the other KAYO_ETCD_*
variables, as for the provider) the cluster database is in etcd.
Exit codes: 0 ok, 1 error, 2 usage. 3: plan review found a --deny category.
`

// usageError is a command line the commands do not accept.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// cli is one invocation.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	dataDir        string
	etcdEndpoints  string
	lockTimeout    time.Duration
	// signals, when set, replaces the process's SIGINT/SIGTERM (tests).
	signals <-chan os.Signal
}

func main() {
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	stop := startProfile(os.Getenv)
	code := c.run(os.Args[1:])
	stop()
	os.Exit(code)
}

// commonFlags registers the flags every command accepts.
func (c *cli) commonFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.dataDir, "data-dir", c.dataDir, "data directory of the cluster database (default $KAYO_DATA_DIR, else .kayo)")
	fs.StringVar(&c.etcdEndpoints, "etcd-endpoints", c.etcdEndpoints,
		"etcd client URLs, comma-separated: the cluster database in etcd (default $KAYO_ETCD_ENDPOINTS; other KAYO_ETCD_* variables apply)")
	fs.DurationVar(&c.lockTimeout, "lock-timeout", c.lockTimeout, "how long to wait for the cluster database")
}

func (c *cli) newFlagSet(name string) *flag.FlagSet {
	if name == "" {
		name = "kayoctl"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.commonFlags(fs)
	return fs
}

// parse parses args into fs and reports a usage error naming the command.
// Flags may come before or after the positional arguments (the usage shows
// `volume check ID --json`); "--" ends the flags.
func parse(fs *flag.FlagSet, args []string) error {
	return parseFlags(fs, interleaved(fs, args))
}

// interleaved moves the flags of args (with their values) before the
// positional arguments, which follow a "--".
func interleaved(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		// A flag that is not boolean takes the next argument as its value.
		if f := fs.Lookup(name); f != nil && i+1 < len(args) {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !bf.IsBoolFlag() {
				i++
				flags = append(flags, args[i])
			}
		}
	}
	return append(append(flags, "--"), pos...)
}

// parseFlags parses args into fs, stopping at the first positional.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	return nil
}

func (c *cli) run(args []string) int {
	c.lockTimeout = engine.DefaultLockTimeout
	global := c.newFlagSet("")
	if err := parseFlags(global, args); err != nil {
		return c.fail(err)
	}
	rest := global.Args()
	if len(rest) == 0 {
		return c.fail(usagef("no command given"))
	}
	cmd, rest := rest[0], rest[1:]
	var err error
	switch cmd {
	case "status":
		err = c.status(rest)
	case "events":
		err = c.events(rest)
	case "quorum":
		err = c.quorum(rest)
	case "host":
		err = c.host(rest)
	case "cluster":
		err = c.cluster(rest)
	case "agent":
		err = c.agent(rest)
	case "vm":
		err = c.vm(rest)
	case "volume":
		err = c.volume(rest)
	case "backup":
		err = c.backup(rest)
	case "restore":
		err = c.restore(rest)
	case "plan":
		err = c.plan(rest)
	case "state":
		err = c.state(rest)
	case "help", "-h", "--help":
		_, _ = fmt.Fprint(c.stdout, usageText)
		return exitOK
	default:
		err = usagef("unknown command %q", cmd)
	}
	return c.fail(err)
}

// fail prints err and returns the exit code it means.
func (c *cli) fail(err error) int {
	var ue usageError
	var denied deniedError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		_, _ = fmt.Fprint(c.stdout, usageText)
		return exitOK
	case errors.As(err, &denied):
		_, _ = fmt.Fprintf(c.stderr, "kayoctl: %s\n", err)
		return exitDenied
	case errors.As(err, &ue):
		_, _ = fmt.Fprintf(c.stderr, "kayoctl: %s\nRun 'kayoctl help' for usage.\n", ue.msg)
		return exitUsage
	default:
		_, _ = fmt.Fprintf(c.stderr, "kayoctl: %s\n", err)
		return exitError
	}
}

// dir is the data dir: --data-dir, $KAYO_DATA_DIR or the default.
func (c *cli) dir() string {
	dir := c.dataDir
	if dir == "" {
		dir = c.getenv("KAYO_DATA_DIR")
	}
	if dir == "" {
		dir = engine.DefaultDataDir
	}
	return dir
}

// etcdOptions are the etcd options of the flags and environment, nil for
// the embedded database.
func (c *cli) etcdOptions() (*store.EtcdOptions, error) {
	// --etcd-endpoints stands in for KAYO_ETCD_ENDPOINTS; the other
	// KAYO_ETCD_* variables still apply.
	getenv := c.getenv
	if c.etcdEndpoints != "" {
		if err := store.CheckEndpoints(store.SplitEndpoints(c.etcdEndpoints)); err != nil {
			return nil, fmt.Errorf("--etcd-endpoints: %w", err)
		}
		getenv = func(k string) string {
			if k == store.EnvEtcdEndpoints {
				return c.etcdEndpoints
			}
			return c.getenv(k)
		}
	}
	return store.EtcdOptionsFromEnv(getenv)
}

// open opens the engine on the data dir.
func (c *cli) open() (*engine.Engine, error) {
	etcd, err := c.etcdOptions()
	if err != nil {
		return nil, err
	}
	return engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: c.dir(), LockTimeout: c.lockTimeout, Etcd: etcd,
		OnWait: func(_ context.Context, waited, limit time.Duration) {
			if waited >= time.Second {
				_, _ = fmt.Fprintf(c.stderr, "kayoctl: waiting for the cluster database, held by another process (%s of at most %s)\n",
					waited.Round(100*time.Millisecond), limit)
			}
		}})
}

// signalContext is cancelled on SIGINT or SIGTERM.
func (c *cli) signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := c.signals
	if ch == nil {
		sc := make(chan os.Signal, 1)
		signal.Notify(sc, os.Interrupt, syscall.SIGTERM)
		ch = sc
	}
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// noArgs refuses positional arguments.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

func (c *cli) host(args []string) error {
	if len(args) == 0 {
		return usagef("host: want `host fail NAME` or `host recover NAME`")
	}
	verb := args[0]
	if verb != "fail" && verb != "recover" {
		return usagef("host: unknown subcommand %q; want fail or recover", verb)
	}
	fs := c.newFlagSet("host " + verb)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("host %s: want exactly one host name, got %d arguments", verb, fs.NArg())
	}
	name := fs.Arg(0)
	e, err := c.open()
	if err != nil {
		return err
	}
	defer closeEngine(e)
	ctx := context.Background()
	var changed bool
	if verb == "fail" {
		changed, err = e.MarkHostDown(ctx, name, engine.DownByLab)
	} else {
		changed, err = e.MarkHostUp(ctx, name)
	}
	if err != nil {
		return err
	}
	h, err := e.GetHost(ctx, name)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	switch {
	case !changed && verb == "fail":
		fmt.Fprintf(&b, "%s was already down (%s)\n", name, h.DownReason)
	case !changed:
		fmt.Fprintf(&b, "%s was not down\n", name)
	case verb == "fail":
		fmt.Fprintf(&b, "%s is down (lab failure; `kayoctl host recover %s` brings it back)\n", name, name)
	default:
		fmt.Fprintf(&b, "%s is up\n", name)
	}
	if h.Cluster != "" {
		q, err := e.GetQuorum(ctx, h.Cluster)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "cluster %s: %s\n", h.Cluster, quorumLine(q))
	}
	return c.emit(&b)
}

// emit writes what a command produced to stdout.
func (c *cli) emit(b *bytes.Buffer) error {
	_, err := c.stdout.Write(b.Bytes())
	return err
}

// closeEngine closes e on a path that has already succeeded or failed:
// a failure to close the database file has nowhere better to go.
func closeEngine(e *engine.Engine) { _ = e.Close() }

// quorumLine is one sentence of a cluster's quorum figures.
func quorumLine(q engine.Quorum) string {
	s := q.Status
	verdict := "has quorum"
	if !s.HasQuorum {
		verdict = "QUORUM LOST"
	}
	return fmt.Sprintf("%s, %d of %d votes present, %d needed, tolerates %d node failure%s: %s",
		q.Type, s.VotesPresent, s.TotalVotes, s.VotesNeeded, s.FailuresTolerated, plural(s.FailuresTolerated), verdict)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
