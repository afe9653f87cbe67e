package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultEtcdPrefix is the key prefix of an installation when
// EtcdOptions.Prefix is empty.
const DefaultEtcdPrefix = "/kayo/"

// DefaultEtcdDialTimeout bounds connecting to etcd when
// EtcdOptions.DialTimeout is zero.
const DefaultEtcdDialTimeout = 5 * time.Second

// EtcdOptions says where the cluster database lives in etcd.
type EtcdOptions struct {
	// Endpoints are etcd client URLs (http://host:2379, https://...).
	Endpoints []string
	// Prefix is prepended to every key, so several installations share one
	// etcd. A missing trailing "/" is added. Default DefaultEtcdPrefix.
	Prefix string
	// Username and Password authenticate when etcd has auth enabled.
	Username, Password string
	// CAFile verifies the servers' certificates (PEM); CertFile and
	// KeyFile are a client certificate. Any of them turns TLS on.
	CAFile, CertFile, KeyFile string
	// DialTimeout bounds connecting and the first request at open.
	// Default DefaultEtcdDialTimeout.
	DialTimeout time.Duration
	// RequestTimeout bounds each later operation whose context has no
	// earlier deadline. Default DefaultLockTimeout.
	RequestTimeout time.Duration
}

// Etcd is the Store on an etcd cluster (v3 API; tested against etcd 3.4
// with client v3.6).
//
// Keys are stored under the installation's prefix. Revisions are etcd's:
// KV.ModRevision and KV.CreateRevision are etcd's mod_revision and
// create_revision, a Commit is one etcd transaction whose comparisons are
// on mod_revision (create_revision = 0 for Absent), and its revision is
// the transaction's. A Commit whose operations are all deletes also writes
// the installation's marker key (the prefix followed by a NUL byte, which
// no store key can contain), so that it too takes a new revision. Leases
// are etcd leases.
type Etcd struct {
	cli     *clientv3.Client
	prefix  string
	marker  string
	eps     string
	timeout time.Duration
	closed  atomic.Bool
}

var (
	_ Store  = (*Etcd)(nil)
	_ Leaser = (*Etcd)(nil)
)

// OpenEtcd connects to etcd and checks, within DialTimeout, that it
// answers a read of the prefix (so a wrong address, certificate, password
// or permission fails here and not at the first operation). The error
// names the endpoints and the cause, and wraps ErrUnavailable when etcd
// could not be reached.
func OpenEtcd(ctx context.Context, opts EtcdOptions) (*Etcd, error) {
	if len(opts.Endpoints) == 0 {
		return nil, fmt.Errorf("store: etcd: no endpoints: %w", ErrInvalid)
	}
	eps := strings.Join(opts.Endpoints, ", ")
	fail := func(what string, err error) error {
		return fmt.Errorf("store: etcd at %s: %s: %w", eps, what, err)
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultEtcdPrefix
	}
	if !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	if err := checkKey("etcd prefix", opts.Prefix); err != nil {
		return nil, fail("bad prefix", err)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultEtcdDialTimeout
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultLockTimeout
	}
	tlsCfg, err := etcdTLS(opts)
	if err != nil {
		return nil, fail("TLS", err)
	}
	// Dialing is not blocking in client v3.6: connection errors surface in
	// the first request, bounded by the same dial timeout.
	dctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            opts.Endpoints,
		DialTimeout:          opts.DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: opts.DialTimeout,
		Username:             opts.Username,
		Password:             opts.Password,
		TLS:                  tlsCfg,
		Logger:               zap.NewNop(),
		Context:              context.WithoutCancel(ctx),
	})
	if err != nil {
		return nil, fail("cannot connect", diagnose(unavailable(dctx, err, opts.DialTimeout), opts, tlsCfg))
	}
	s := &Etcd{cli: cli, prefix: opts.Prefix, marker: opts.Prefix + "\x00", eps: eps, timeout: opts.RequestTimeout}
	if _, err := cli.Get(dctx, s.marker, clientv3.WithCountOnly()); err != nil {
		_ = cli.Close()
		return nil, fail("cannot read", diagnose(unavailable(dctx, err, opts.DialTimeout), opts, tlsCfg))
	}
	return s, nil
}

// diagnose adds to an ErrUnavailable the cause gRPC does not report after
// its deadline: it connects (and shakes hands over TLS) to each endpoint
// once, for at most a second, and says what failed.
func diagnose(err error, opts EtcdOptions, tlsCfg *tls.Config) error {
	if !errors.Is(err, ErrUnavailable) {
		return err
	}
	limit := min(opts.DialTimeout, time.Second)
	var causes []string
	for _, ep := range opts.Endpoints {
		u, perr := url.Parse(ep)
		if perr != nil || u.Host == "" {
			causes = append(causes, fmt.Sprintf("%s: not a URL like http://host:2379", ep))
			continue
		}
		conn, derr := net.DialTimeout("tcp", u.Host, limit)
		if derr != nil {
			causes = append(causes, fmt.Sprintf("%s: %v", ep, derr))
			continue
		}
		if u.Scheme == "https" {
			cfg := &tls.Config{MinVersion: tls.VersionTLS12}
			if tlsCfg != nil {
				cfg = tlsCfg.Clone()
			}
			cfg.ServerName = u.Hostname()
			_ = conn.SetDeadline(time.Now().Add(limit))
			tc := tls.Client(conn, cfg)
			herr := tc.Handshake()
			if herr == nil {
				// The server may refuse a missing client certificate only
				// after the handshake: a read tells.
				_ = tc.SetReadDeadline(time.Now().Add(limit / 4))
				_, herr = tc.Read(make([]byte, 1))
				var ne net.Error
				if errors.As(herr, &ne) && ne.Timeout() {
					herr = nil
				}
			}
			conn = tc
			var rh tls.RecordHeaderError
			switch {
			case herr != nil && (errors.As(herr, &rh) || speaksHTTP(u.Host, limit)):
				causes = append(causes, fmt.Sprintf("%s: the server does not speak TLS; use http://%s", ep, u.Host))
			case herr != nil:
				causes = append(causes, fmt.Sprintf("%s: TLS: %v", ep, herr))
			}
		} else if speaksTLS(u.Host, limit) {
			causes = append(causes, fmt.Sprintf("%s: the server answered TLS; use https://%s", ep, u.Host))
		}
		_ = conn.Close()
	}
	if len(causes) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(causes, "; "))
}

// speaksTLS reports whether the server at host answers a TLS handshake.
// It only probes: no certificate is trusted and nothing is sent after.
func speaksTLS(host string, limit time.Duration) bool {
	conn, err := net.DialTimeout("tcp", host, limit)
	if err != nil {
		return false
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(limit))
	err = tls.Client(conn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}).Handshake() //nolint:gosec // a probe: nothing is sent
	var alert tls.AlertError
	return err == nil || errors.As(err, &alert)
}

// speaksHTTP reports whether the server at host answers plain HTTP (etcd
// serves /health on its client port).
func speaksHTTP(host string, limit time.Duration) bool {
	conn, err := net.DialTimeout("tcp", host, limit)
	if err != nil {
		return false
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(limit))
	if _, err := fmt.Fprintf(conn, "GET /health HTTP/1.0\r\nHost: %s\r\n\r\n", host); err != nil {
		return false
	}
	b := make([]byte, 5)
	_, err = io.ReadFull(conn, b)
	return err == nil && string(b) == "HTTP/"
}

// unavailable wraps a connection error in ErrUnavailable, saying how long
// it waited; errors etcd answered (auth, permission) it returns as they are.
func unavailable(ctx context.Context, err error, limit time.Duration) error {
	if errors.Is(err, rpctypes.ErrAuthFailed) || errors.Is(err, rpctypes.ErrPermissionDenied) ||
		errors.Is(err, rpctypes.ErrUserEmpty) || errors.Is(err, rpctypes.ErrAuthNotEnabled) ||
		errors.Is(err, rpctypes.ErrGRPCAuthFailed) || errors.Is(err, rpctypes.ErrGRPCPermissionDenied) {
		return err
	}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: no answer within %s (dial timeout): %w", ErrUnavailable, limit, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func etcdTLS(opts EtcdOptions) (*tls.Config, error) {
	if opts.CAFile == "" && opts.CertFile == "" && opts.KeyFile == "" {
		for _, ep := range opts.Endpoints {
			if strings.HasPrefix(ep, "https://") {
				return &tls.Config{MinVersion: tls.VersionTLS12}, nil
			}
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", opts.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("cert_file and key_file go together: set both or neither")
	}
	if opts.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file %s / key_file %s: %w", opts.CertFile, opts.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Prefix returns the installation's key prefix (ending in "/").
func (s *Etcd) Prefix() string { return s.prefix }

// Client returns the etcd client (tools, benchmarks).
func (s *Etcd) Client() *clientv3.Client { return s.cli }

// op bounds ctx by the request timeout and fails fast when closed.
func (s *Etcd) op(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if s.closed.Load() {
		return nil, nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= s.timeout {
		c, cancel := context.WithCancel(ctx)
		return c, cancel, nil
	}
	c, cancel := context.WithTimeout(ctx, s.timeout)
	return c, cancel, nil
}

// wrap maps an etcd client error: the caller's own cancellation stays
// context.Canceled / DeadlineExceeded; the request timeout and lost
// connections become ErrUnavailable naming the endpoints.
func (s *Etcd) wrap(ctx context.Context, err error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, rpctypes.ErrLeaseNotFound) || errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
		return fmt.Errorf("%w (%w)", ErrLeaseNotFound, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: etcd at %s did not answer within %s: %w", ErrUnavailable, s.eps, s.timeout, err)
	}
	return fmt.Errorf("etcd at %s: %w", s.eps, err)
}

func (s *Etcd) kv(k []byte, v []byte, mod, create int64) KV {
	return KV{Key: strings.TrimPrefix(string(k), s.prefix), Value: nonNil(v), ModRevision: mod, CreateRevision: create}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Get implements Store.
func (s *Etcd) Get(ctx context.Context, key string) (KV, error) {
	if err := CheckKey(key); err != nil {
		return KV{}, err
	}
	octx, cancel, err := s.op(ctx)
	if err != nil {
		return KV{}, fmt.Errorf("store: get: %w", err)
	}
	defer cancel()
	resp, err := s.cli.Get(octx, s.prefix+key)
	if err != nil {
		return KV{}, fmt.Errorf("store: get %q: %w", key, s.wrap(ctx, err))
	}
	if len(resp.Kvs) == 0 {
		return KV{}, fmt.Errorf("store: get: key %q: %w", key, ErrNotFound)
	}
	r := resp.Kvs[0]
	return s.kv(r.Key, r.Value, r.ModRevision, r.CreateRevision), nil
}

// GetMany implements Store: one read-only etcd transaction of one range
// read per key, so one round trip and one linearizable read for all keys.
func (s *Etcd) GetMany(ctx context.Context, keys ...string) ([]KV, error) {
	if err := CheckKeys(keys); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, nil
	}
	octx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: get many: %w", err)
	}
	defer cancel()
	gets := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		gets[i] = clientv3.OpGet(s.prefix + k)
	}
	resp, err := s.cli.Txn(octx).Then(gets...).Commit()
	if err != nil {
		return nil, fmt.Errorf("store: get many %q: %w", keys, s.wrap(ctx, err))
	}
	if len(resp.Responses) != len(keys) {
		return nil, fmt.Errorf("store: get many: etcd at %s answered %d reads for %d keys", s.eps, len(resp.Responses), len(keys))
	}
	kvs := make([]KV, len(keys))
	for i, k := range keys {
		kvs[i] = KV{Key: k}
		if rr := resp.Responses[i].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
			r := rr.Kvs[0]
			kvs[i] = s.kv(r.Key, r.Value, r.ModRevision, r.CreateRevision)
		}
	}
	return kvs, nil
}

// List implements Store: one etcd range read, in key order, at the
// revision etcd reports for it.
func (s *Etcd) List(ctx context.Context, prefix string) ([]KV, int64, error) {
	if err := CheckPrefix(prefix); err != nil {
		return nil, 0, err
	}
	octx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list %q: %w", prefix, err)
	}
	defer cancel()
	resp, err := s.cli.Get(octx, s.prefix+prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("store: list %q: %w", prefix, s.wrap(ctx, err))
	}
	kvs := make([]KV, 0, len(resp.Kvs))
	for _, r := range resp.Kvs {
		if string(r.Key) == s.marker {
			continue
		}
		kvs = append(kvs, s.kv(r.Key, r.Value, r.ModRevision, r.CreateRevision))
	}
	if len(kvs) == 0 {
		kvs = nil
	}
	return kvs, resp.Header.Revision, nil
}

// Commit implements Store as one etcd transaction. When a comparison fails
// the transaction's else branch reads the compared keys in the same
// snapshot, so the error says which key changed and how.
func (s *Etcd) Commit(ctx context.Context, cmps []Cmp, ops []Op) (int64, error) {
	if err := CheckCommit(cmps, ops); err != nil {
		return 0, err
	}
	octx, cancel, err := s.op(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: commit: %w", err)
	}
	defer cancel()
	ifs := make([]clientv3.Cmp, len(cmps))
	elses := make([]clientv3.Op, len(cmps))
	for i, c := range cmps {
		k := s.prefix + c.Key
		if c.ModRevision == 0 {
			ifs[i] = clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
		} else {
			ifs[i] = clientv3.Compare(clientv3.ModRevision(k), "=", c.ModRevision)
		}
		elses[i] = clientv3.OpGet(k, clientv3.WithKeysOnly())
	}
	thens := make([]clientv3.Op, 0, len(ops)+1)
	allDeletes := true
	for _, op := range ops {
		k := s.prefix + op.Key
		if op.Delete {
			thens = append(thens, clientv3.OpDelete(k))
			continue
		}
		allDeletes = false
		if op.Lease != 0 {
			thens = append(thens, clientv3.OpPut(k, string(op.Value), clientv3.WithLease(clientv3.LeaseID(op.Lease))))
		} else {
			thens = append(thens, clientv3.OpPut(k, string(op.Value)))
		}
	}
	if allDeletes {
		thens = append(thens, clientv3.OpPut(s.marker, ""))
	}
	resp, err := s.cli.Txn(octx).If(ifs...).Then(thens...).Else(elses...).Commit()
	if err != nil {
		return 0, fmt.Errorf("store: commit: %w", s.wrap(ctx, err))
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	for i, c := range cmps {
		var mod int64
		if rr := resp.Responses[i].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
			mod = rr.Kvs[0].ModRevision
		}
		switch {
		case c.ModRevision == 0 && mod != 0:
			return 0, fmt.Errorf("store: commit: key %q exists (mod revision %d), expected absent: %w", c.Key, mod, ErrConflict)
		case c.ModRevision != 0 && mod == 0:
			return 0, fmt.Errorf("store: commit: key %q does not exist, expected mod revision %d: %w", c.Key, c.ModRevision, ErrConflict)
		case c.ModRevision != 0 && mod != c.ModRevision:
			return 0, fmt.Errorf("store: commit: key %q is at mod revision %d, expected %d: %w", c.Key, mod, c.ModRevision, ErrConflict)
		}
	}
	return 0, fmt.Errorf("store: commit: a comparison failed: %w", ErrConflict)
}

// Grant implements Leaser with an etcd lease.
func (s *Etcd) Grant(ctx context.Context, ttl time.Duration) (LeaseID, error) {
	octx, cancel, err := s.op(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: grant lease: %w", err)
	}
	defer cancel()
	resp, err := s.cli.Grant(octx, LeaseSeconds(ttl))
	if err != nil {
		return 0, fmt.Errorf("store: grant lease: %w", s.wrap(ctx, err))
	}
	return LeaseID(resp.ID), nil
}

// KeepAlive implements Leaser: one renewal (etcd's KeepAliveOnce).
func (s *Etcd) KeepAlive(ctx context.Context, id LeaseID) error {
	octx, cancel, err := s.op(ctx)
	if err != nil {
		return fmt.Errorf("store: keep lease %d alive: %w", id, err)
	}
	defer cancel()
	if _, err := s.cli.KeepAliveOnce(octx, clientv3.LeaseID(id)); err != nil {
		return fmt.Errorf("store: keep lease %d alive: %w", id, s.wrap(ctx, err))
	}
	return nil
}

// Revoke implements Leaser.
func (s *Etcd) Revoke(ctx context.Context, id LeaseID) error {
	octx, cancel, err := s.op(ctx)
	if err != nil {
		return fmt.Errorf("store: revoke lease %d: %w", id, err)
	}
	defer cancel()
	if _, err := s.cli.Revoke(octx, clientv3.LeaseID(id)); err != nil {
		err = s.wrap(ctx, err)
		if errors.Is(err, ErrLeaseNotFound) {
			return nil
		}
		return fmt.Errorf("store: revoke lease %d: %w", id, err)
	}
	return nil
}

// Close implements Store: it closes the connection (leases are left to
// expire). Closing twice is no error.
func (s *Etcd) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	err := s.cli.Close()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
