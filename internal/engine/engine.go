// Package engine is the cluster manager: the one API the Terraform provider
// and kayoctl call. It keeps every record in the cluster database
// (internal/engine/store), decides with pure packages (validate, placement,
// quorum) and commits each state change as one revision-checked write.
//
// It never imports terraform-plugin packages.
package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/record"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// DefaultDataDir is used when neither the provider nor KAYO_DATA_DIR says.
const DefaultDataDir = ".kayo"

// DefaultLockTimeout bounds how long an operation waits for the database.
const DefaultLockTimeout = 30 * time.Second

// DatabaseFile is the bbolt file inside the data dir.
const DatabaseFile = "cluster.db"

// Config opens an Engine.
type Config struct {
	// DataDir holds the embedded database and SAN. Ignored when Store is set.
	DataDir string
	// LockTimeout bounds each wait for the database.
	LockTimeout time.Duration
	// OnWait is told while an operation waits for another process.
	OnWait store.WaitFunc
	// Store overrides the embedded database (tests).
	Store store.Store
	// Etcd, when it names endpoints, puts the cluster database in etcd
	// instead of DataDir (which still holds the embedded SAN). Its
	// RequestTimeout defaults to LockTimeout.
	Etcd *store.EtcdOptions
	// Clock is the time source; time.Now when nil.
	Clock func() time.Time
	// Runtime is the process's state the engine shares with the other
	// engines of the process (runtime.go); a runtime of its own when nil.
	Runtime *Runtime
	// Metrics, when set, counts devices opened and hypervisor calls.
	Metrics *Metrics
	// ByIDDir is where a device_id is resolved (DefaultByIDDir when "").
	ByIDDir string
	// LocalExecutor starts the in-process work executor of a node that
	// has no agent, on the embedded database (executor_work.go): the
	// binaries set it to internal/nodeagent/workexec's Local. When nil,
	// such a node's work fails (ErrAgentDown) as on etcd.
	LocalExecutor LocalExecutorFunc
}

// Engine is the cluster manager. It is safe for concurrent use.
type Engine struct {
	st      store.Store
	now     func() time.Time
	dataDir string
	rt      *Runtime
	// ownRuntime: rt was made for this engine alone; Close releases its
	// mounts.
	ownRuntime bool
	// migrationHook, when set (crash tests), is called at each phase
	// boundary of a migration (crashPoint).
	migrationHook func(phase string)
	// workHook, when set (tests), is called by the test executors of this
	// engine (executors_test.go) at each phase of a request's work, with
	// the executor's ID and, for an in-process one, a stop as a crash.
	workHook func(id string, stop func(), op, phase string)
	// formatDevice, when set (crash tests), wraps the device a volume's
	// format writes to (volume_format.go).
	formatDevice func(kayofs.Device) kayofs.Device
	// work: the engine's in-process node executors (executor_work.go).
	work localWork
	// remoteDB: the database is etcd, not this data dir's (volume
	// reports of a lab LUN then come only from where its image is).
	remoteDB bool
	metrics  *Metrics
	byID     string // Config.ByIDDir
	// eventSeq orders the events of one commit.
	eventSeq atomic.Uint64
	// clusterOf maps a host name to the cluster it was last read in: a
	// guess that lets UpdateHost read a node and its cluster's records in
	// one snapshot (readNodeRecs checks it against the host record).
	clusterOf sync.Map
	// heads holds the last cluster record decoded per cluster for node
	// updates (clusterHeadRecord).
	heads sync.Map
	// hostRecs holds the last record decoded per host (ListHosts), kept
	// with its bytes like heads: placement lists every host per VM.
	hostRecs sync.Map
	// nodeVMRecs holds the last capacity record decoded per node
	// (nodeVMsRecord).
	nodeVMRecs sync.Map
	// spaceGates shares space computations per volume; reportRecs holds
	// the last report decoded per key (volume_reports.go).
	spaceGates sync.Map
	reportRecs sync.Map
	// volumeRecs holds the last record decoded per volume (volumeRecord).
	volumeRecs sync.Map
}

// Open returns an Engine on cfg.Store, on etcd (cfg.Etcd), or on the
// embedded database in cfg.DataDir, creating the directory when missing.
// Opening etcd checks within its dial timeout that it answers.
func Open(cfg Config) (*Engine, error) {
	e := &Engine{st: cfg.Store, now: cfg.Clock, dataDir: cfg.DataDir, rt: cfg.Runtime, metrics: cfg.Metrics, byID: cfg.ByIDDir}
	e.work.start = cfg.LocalExecutor
	if e.now == nil {
		e.now = time.Now
	}
	if e.rt == nil {
		e.rt, e.ownRuntime = NewRuntime(), true
	}
	if e.st != nil {
		return e, nil
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = DefaultLockTimeout
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data_dir %q: %w", cfg.DataDir, err)
	}
	// On etcd the data dir is made only when something needs it (an
	// embedded SAN LUN, an agent's sockets): a plan run by CI from a fresh
	// directory leaves nothing behind.
	if cfg.Etcd != nil && len(cfg.Etcd.Endpoints) > 0 {
		opts := *cfg.Etcd
		if opts.RequestTimeout <= 0 {
			opts.RequestTimeout = cfg.LockTimeout
		}
		// Open takes no context; the dial timeout bounds the check.
		st, err := store.OpenEtcd(context.Background(), opts)
		if err != nil {
			return nil, err
		}
		e.st, e.dataDir, e.remoteDB = st, dir, true
		return e, nil
	}
	// The data dir holds the cluster database and the LUN images: owner
	// only (an existing directory keeps its mode).
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir %q: cannot create it: %w", dir, err)
	}
	st, err := openBolt(dir, cfg)
	if err != nil {
		return nil, fmt.Errorf("data_dir %q: %w", dir, err)
	}
	e.st, e.dataDir = st, dir
	return e, nil
}

// Close releases the database, and the cached mounts of a runtime of the
// engine's own.
func (e *Engine) Close() error {
	e.closeLocalWork()
	if e.ownRuntime {
		e.rt.ReleaseMounts()
	}
	return e.st.Close()
}

// ReleaseMounts detaches every idle volume mount of the engine's runtime.
func (e *Engine) ReleaseMounts() { e.rt.ReleaseMounts() }

// DataDir is the absolute data directory (on etcd it still holds the
// embedded SAN; as given, possibly "", when Config.Store is set).
func (e *Engine) DataDir() string { return e.dataDir }

// Store exposes the cluster database to engine tools (kayoctl).
func (e *Engine) Store() store.Store { return e.st }

// retry runs fn until it does not return ErrConflict (record.Retry).
func (e *Engine) retry(ctx context.Context, fn func() error) error { return record.Retry(ctx, fn) }

func getJSON[T any](ctx context.Context, st store.Store, key string, v *T) (int64, error) {
	return record.Get(ctx, st, key, v)
}

func listJSON[T any](ctx context.Context, st store.Store, prefix string) ([]T, []int64, error) {
	return record.List[T](ctx, st, prefix)
}

// memo returns the value fn decoded last from the same bytes raw under
// key in m, or runs fn and keeps its value with raw. Records change
// rarely compared with how often placement and node updates read them;
// the value is shared, so callers copy what they change.
func memo[T any](m *sync.Map, key string, raw []byte, fn func() (T, error)) (T, error) {
	if v, ok := m.Load(key); ok {
		if d := v.(*memoEntry[T]); bytes.Equal(d.raw, raw) {
			return d.v, nil
		}
	}
	x, err := fn()
	if err != nil {
		return x, err
	}
	m.Store(key, &memoEntry[T]{raw: raw, v: x})
	return x, nil
}

type memoEntry[T any] struct {
	raw []byte
	v   T
}

func putJSON(key string, v any) store.Op { return record.Put(key, v) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func decode(kv store.KV, v any) error {
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return fmt.Errorf("record %q is corrupt: %w", kv.Key, err)
	}
	return nil
}
