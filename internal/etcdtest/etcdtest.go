// Package etcdtest runs real etcd servers for tests: single members or
// small clusters on loopback, on free ports, with data under the test's
// temporary directory, stopped by their own PID when the test ends.
//
// The etcd binary is KAYO_ETCD_BIN or `etcd` on PATH (Debian's etcd-server
// package; .ci/run installs it). Without it tests skip, unless CI=true,
// where they fail.
package etcdtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EnvBinary names the etcd binary to use instead of `etcd` on PATH.
const EnvBinary = "KAYO_ETCD_BIN"

// Binary returns the etcd binary, or "" when there is none.
func Binary() string {
	if b := os.Getenv(EnvBinary); b != "" {
		return b
	}
	if b, err := exec.LookPath("etcd"); err == nil {
		return b
	}
	return ""
}

// Require returns the etcd binary. Without one it skips the test, or
// fails it when CI=true (CI must run the etcd tests).
func Require(t testing.TB) string {
	t.Helper()
	b := Binary()
	if b != "" {
		return b
	}
	msg := "etcd not found (set " + EnvBinary + " or install Debian's etcd-server: apt-get install etcd-server; .ci/run does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("skipping: " + msg)
	return ""
}

// TLS are the server's certificate files. With them the members serve
// clients on https; ClientCertAuth makes them demand client certificates
// signed by CAFile.
type TLS struct {
	CAFile, CertFile, KeyFile string
	ClientCertAuth            bool
}

// Options shape a cluster.
type Options struct {
	// Members is the member count; 0 means 1.
	Members int
	// TLS, if set, serves clients over TLS.
	TLS *TLS
	// ListenIP is the address clients and peers use; empty means
	// 127.0.0.1 (e.g. a bridge address that network namespaces reach).
	ListenIP string
}

// Member is one etcd process.
type Member struct {
	Name      string
	ClientURL string
	PeerURL   string
	Dir       string
	log       string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Cluster is a set of members started together.
type Cluster struct {
	Members []*Member
	tls     *TLS
}

// Start starts an etcd cluster of opts.Members members and waits until it
// is healthy; the test's cleanup stops every member. It skips the test
// when there is no etcd binary (see Require).
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	bin := Require(t)
	n := max(opts.Members, 1)
	base := t.TempDir()
	var c *Cluster
	var err error
	// Free ports are found by binding and releasing them; another process
	// may grab one in between, so try a few times.
	for attempt := range 3 {
		c, err = start(bin, base, attempt, n, opts)
		if err == nil {
			break
		}
		t.Logf("etcd did not start (attempt %d): %v", attempt+1, err)
	}
	if err != nil {
		t.Fatalf("etcd did not start: %v", err)
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			if err := m.Stop(); err != nil {
				t.Errorf("stop etcd %s: %v", m.Name, err)
			}
		}
		if t.Failed() {
			for _, m := range c.Members {
				t.Logf("etcd %s log tail:\n%s", m.Name, tail(m.log, 30))
			}
		}
	})
	return c
}

func start(bin, base string, attempt, n int, opts Options) (*Cluster, error) {
	tlsFiles, ip := opts.TLS, opts.ListenIP
	if ip == "" {
		ip = "127.0.0.1"
	}
	ports, err := freePorts(ip, 2*n)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if tlsFiles != nil {
		scheme = "https"
	}
	c := &Cluster{tls: tlsFiles}
	var initial []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(ip, fmt.Sprint(ports[2*i]))),
			PeerURL:   fmt.Sprintf("http://%s", net.JoinHostPort(ip, fmt.Sprint(ports[2*i+1]))),
		}
		m.Dir = filepath.Join(base, fmt.Sprintf("try%d-%s", attempt, m.Name))
		m.log = m.Dir + ".log"
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	token := fmt.Sprintf("kayo-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	for _, m := range c.Members {
		args := []string{
			"--name", m.Name, "--data-dir", m.Dir,
			"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			// Fast elections on loopback; leases still need whole seconds.
			"--heartbeat-interval", "25", "--election-timeout", "250",
			"--logger", "zap", "--log-level", "warn",
		}
		if tlsFiles != nil {
			args = append(args, "--cert-file", tlsFiles.CertFile, "--key-file", tlsFiles.KeyFile,
				"--trusted-ca-file", tlsFiles.CAFile)
			if tlsFiles.ClientCertAuth {
				args = append(args, "--client-cert-auth")
			}
		}
		if err := m.launch(bin, args); err != nil {
			c.stopAll()
			return nil, err
		}
	}
	if err := c.waitHealthy(20 * time.Second); err != nil {
		c.stopAll()
		return nil, err
	}
	return c, nil
}

func (m *Member) launch(bin string, args []string) error {
	logf, err := os.Create(m.log)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	// The test's environment must not configure the member (etcd reads
	// ETCD_* variables).
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	m.cmd = cmd
	m.done = make(chan struct{})
	go func() {
		m.err = cmd.Wait()
		_ = logf.Close()
		close(m.done)
	}()
	return nil
}

// PID is the member's process ID.
func (m *Member) PID() int { return m.cmd.Process.Pid }

// Running reports whether the process is still alive.
func (m *Member) Running() bool {
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Stop terminates the member by its PID (SIGTERM, then SIGKILL after five
// seconds) and waits for it. Stopping a stopped member is no error.
func (m *Member) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || !m.Running() {
		return nil
	}
	_ = syscall.Kill(m.PID(), syscall.SIGTERM)
	select {
	case <-m.done:
		return nil
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(m.PID(), syscall.SIGKILL)
	select {
	case <-m.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("etcd %s (pid %d) survived SIGKILL", m.Name, m.PID())
	}
}

// Kill kills the member with SIGKILL by its PID, as a crash, and waits.
func (m *Member) Kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || !m.Running() {
		return
	}
	_ = syscall.Kill(m.PID(), syscall.SIGKILL)
	<-m.done
}

// Endpoints are the client URLs of every member.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.Members))
	for i, m := range c.Members {
		eps[i] = m.ClientURL
	}
	return eps
}

func (c *Cluster) stopAll() {
	for _, m := range c.Members {
		_ = m.Stop()
	}
}

// ClientTLS returns a client TLS configuration trusting the cluster's CA
// (nil without TLS); with client certificate files it presents them.
func (c *Cluster) ClientTLS(certFile, keyFile string) (*tls.Config, error) {
	if c.tls == nil {
		return nil, nil
	}
	pem, err := os.ReadFile(c.tls.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Client returns a client of the cluster without authentication; with
// TLS and client-certificate auth it needs a client certificate.
func (c *Cluster) Client(t testing.TB, certFile, keyFile string) *clientv3.Client {
	t.Helper()
	tc, err := c.ClientTLS(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second,
		TLS: tc, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// waitHealthy polls every member's /health until all say true.
func (c *Cluster) waitHealthy(limit time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	if c.tls != nil {
		tc, err := c.ClientTLS("", "")
		if err != nil {
			return err
		}
		if c.tls.ClientCertAuth {
			// The server's own certificate is a client certificate too.
			cert, err := tls.LoadX509KeyPair(c.tls.CertFile, c.tls.KeyFile)
			if err != nil {
				return err
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		hc.Transport = &http.Transport{TLSClientConfig: tc}
	}
	deadline := time.Now().Add(limit)
	for _, m := range c.Members {
		for {
			if !m.Running() {
				return fmt.Errorf("etcd %s exited: %v\n%s", m.Name, m.err, tail(m.log, 20))
			}
			if healthy(hc, m.ClientURL) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("etcd %s not healthy after %s\n%s", m.Name, limit, tail(m.log, 20))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func healthy(hc *http.Client, url string) bool {
	resp, err := hc.Get(url + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(b.String(), `"true"`)
}

// WaitHealthy waits until the member answers /health with true.
func (c *Cluster) WaitHealthy(limit time.Duration) error { return c.waitHealthy(limit) }

// freePorts returns n distinct free TCP ports on ip.
func freePorts(ip string, n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// EnableAuth turns on etcd authentication: a root user (password
// rootPassword) and user with read-write access to keys under prefix
// only. cli must be an unauthenticated client.
func EnableAuth(ctx context.Context, cli *clientv3.Client, rootPassword, user, password, prefix string) error {
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", rootPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, user); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, user, prefix, clientv3.GetPrefixRangeEnd(prefix),
				clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, user, password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, user, user); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("enable auth, step %d: %w", i+1, err)
		}
	}
	return nil
}
