package store_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/storetest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
)

var prefixSeq atomic.Int64

// uniquePrefix gives each store its own installation on a shared etcd.
func uniquePrefix(t testing.TB) string {
	return fmt.Sprintf("/kayo-test/%d-%d/", os.Getpid(), prefixSeq.Add(1))
}

func openEtcd(t testing.TB, opts store.EtcdOptions) *store.Etcd {
	t.Helper()
	s, err := store.OpenEtcd(context.Background(), opts)
	if err != nil {
		t.Fatalf("OpenEtcd: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// The one contract suite, on a real single-member etcd: one installation
// (prefix) per subtest.
func TestEtcdContract(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, etcdtest.Options{})
	storetest.Run(t, func(t *testing.T) store.Store {
		return openEtcd(t, store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: uniquePrefix(t)})
	})
}

// Two installations on one etcd do not see each other; keys are stored
// under the prefix.
func TestEtcdPrefixes(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, etcdtest.Options{})
	a := openEtcd(t, store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: "/site-a"})
	b := openEtcd(t, store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: "/site-a-b/"})
	if a.Prefix() != "/site-a/" {
		t.Fatalf("prefix %q, want a trailing slash added", a.Prefix())
	}
	if _, err := a.Commit(bg, nil, []store.Op{store.Put("hosts/h1", []byte("a"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(bg, nil, []store.Op{store.Put("hosts/h2", []byte("b"))}); err != nil {
		t.Fatal(err)
	}
	kvs, _, err := a.List(bg, "")
	if err != nil || len(kvs) != 1 || kvs[0].Key != "hosts/h1" {
		t.Fatalf("installation a lists %v, %v", kvs, err)
	}
	raw, err := c.Client(t, "", "").Get(bg, "/site-a/hosts/h1")
	if err != nil || len(raw.Kvs) != 1 || string(raw.Kvs[0].Value) != "a" {
		t.Fatalf("raw etcd read of /site-a/hosts/h1: %v, %v", raw, err)
	}
	// A delete-only commit still takes a revision (the marker key), and
	// the marker never shows in List.
	_, r1, _ := a.List(bg, "")
	r2, err := a.Commit(bg, nil, []store.Op{store.Del("never")})
	if err != nil || r2 <= r1 {
		t.Fatalf("delete-only commit: revision %d after %d, %v", r2, r1, err)
	}
	if kvs, _, _ := a.List(bg, ""); len(kvs) != 1 {
		t.Fatalf("List shows %v", kvs)
	}
}

// Unreachable etcd fails at open, within the dial timeout, naming the
// endpoints and the cause.
func TestEtcdUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := "http://" + l.Addr().String()
	_ = l.Close() // nobody listens there now
	start := time.Now()
	_, err = store.OpenEtcd(bg, store.EtcdOptions{Endpoints: []string{ep}, DialTimeout: 500 * time.Millisecond})
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("OpenEtcd took %s with a dial timeout of 500ms", d)
	}
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), ep) {
		t.Fatalf("error %v: want ErrUnavailable naming %s", err, ep)
	}
	t.Logf("error: %v", err)
}

// A three-member etcd loses its leader mid-run; the store carries on, and
// no acknowledged increment is lost.
func TestEtcdClusterLosesMember(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	s := openEtcd(t, store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: uniquePrefix(t), RequestTimeout: 10 * time.Second})
	cli := c.Client(t, "", "")
	var (
		acked, unknown, afterKill atomic.Int64
		killed                    atomic.Bool
		wg                        sync.WaitGroup
	)
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := storetest.Increment(bg, s, "counter")
				switch {
				case err == nil:
					acked.Add(1)
					if killed.Load() {
						afterKill.Add(1)
					}
				case errors.Is(err, store.ErrConflict):
				default:
					// The member died with the request in flight: it may or
					// may not have been applied.
					unknown.Add(1)
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	time.Sleep(400 * time.Millisecond)
	// Stop the leader: the hardest member to lose.
	var leader *etcdtest.Member
	for _, m := range c.Members {
		st, err := cli.Status(bg, m.ClientURL)
		if err == nil && st.Header.MemberId == st.Leader {
			leader = m
		}
	}
	if leader == nil {
		leader = c.Members[0]
	}
	if err := leader.Stop(); err != nil {
		t.Fatal(err)
	}
	killed.Store(true)
	before := acked.Load()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("stopped leader %s after %d increments; %d after, %d with unknown outcome", leader.Name, before, afterKill.Load(), unknown.Load())
	if afterKill.Load() < 5 {
		t.Fatalf("only %d increments after the leader stopped", afterKill.Load())
	}
	kv, err := s.Get(bg, "counter")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseInt(string(kv.Value), 10, 64)
	if n < acked.Load() || n > acked.Load()+unknown.Load() {
		t.Fatalf("counter %d, acknowledged %d (+%d unknown): lost or invented updates", n, acked.Load(), unknown.Load())
	}
}

// TLS with a client certificate and password authentication, with
// certificates the test generates.
func TestEtcdTLSAuth(t *testing.T) {
	t.Parallel()
	certs := etcdtest.GenerateCerts(t)
	c := etcdtest.Start(t, etcdtest.Options{TLS: &etcdtest.TLS{
		CAFile: certs.CAFile, CertFile: certs.ServerCertFile, KeyFile: certs.ServerKey, ClientCertAuth: true}})
	const prefix = "/kayo-secure/"
	if err := etcdtest.EnableAuth(bg, c.Client(t, certs.ClientCertFile, certs.ClientKey), "rootpw", "kayo", "s3cret", prefix); err != nil {
		t.Fatal(err)
	}
	opts := store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: prefix, Username: "kayo", Password: "s3cret",
		CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKey, DialTimeout: 3 * time.Second}
	s := openEtcd(t, opts)
	rev, err := s.Commit(bg, []store.Cmp{store.Absent("hosts/h1")}, []store.Op{store.Put("hosts/h1", []byte("x"))})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := storetest.AsLeaser(s)
	id, err := l.Grant(bg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(bg, []store.Cmp{store.At("hosts/h1", rev)}, []store.Op{store.PutLease("locks/h1", nil, id)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Revoke(bg, id); err != nil {
		t.Fatal(err)
	}

	for name, tc := range map[string]struct {
		mod  func(*store.EtcdOptions)
		want string
	}{
		"wrong password":     {func(o *store.EtcdOptions) { o.Password = "nope" }, "authentication failed"},
		"outside the prefix": {func(o *store.EtcdOptions) { o.Prefix = "/other/" }, "permission denied"},
		"no CA":              {func(o *store.EtcdOptions) { o.CAFile = "" }, "certificate"},
		"no client cert":     {func(o *store.EtcdOptions) { o.CertFile, o.KeyFile = "", "" }, ""},
		"cert without key":   {func(o *store.EtcdOptions) { o.KeyFile = "" }, "cert_file and key_file"},
	} {
		o := opts
		o.DialTimeout = time.Second
		tc.mod(&o)
		s, err := store.OpenEtcd(bg, o)
		if err == nil {
			_ = s.Close()
			t.Errorf("%s: OpenEtcd succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), c.Members[0].ClientURL) {
			t.Errorf("%s: error %q should name the endpoint and say %q", name, err, tc.want)
		}
	}
}

// The wrong scheme is reported with its cause: an http:// endpoint of a
// server that answers TLS, and the reverse.
func TestEtcdWrongScheme(t *testing.T) {
	t.Parallel()
	certs := etcdtest.GenerateCerts(t)
	secure := etcdtest.Start(t, etcdtest.Options{TLS: &etcdtest.TLS{CAFile: certs.CAFile, CertFile: certs.ServerCertFile, KeyFile: certs.ServerKey,
		ClientCertAuth: true}})
	plain := etcdtest.Start(t, etcdtest.Options{})
	for _, tc := range []struct{ ep, want string }{
		{strings.Replace(secure.Members[0].ClientURL, "https://", "http://", 1), "the server answered TLS; use https://"},
		{strings.Replace(plain.Members[0].ClientURL, "http://", "https://", 1), "the server does not speak TLS; use http://"},
	} {
		s, err := store.OpenEtcd(bg, store.EtcdOptions{Endpoints: []string{tc.ep}, CAFile: certs.CAFile, DialTimeout: 2 * time.Second})
		if err == nil {
			_ = s.Close()
			t.Fatalf("%s: OpenEtcd succeeded", tc.ep)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not say %q", tc.ep, err, tc.want)
		}
	}
}

// Snapshot saves etcd's own snapshot: a bbolt file holding the keys.
func TestEtcdSnapshot(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, etcdtest.Options{})
	s := openEtcd(t, store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: "/snap/"})
	rev, err := s.Commit(bg, nil, []store.Op{store.Put("hosts/h1", []byte("x"))})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "etcd.snapshot")
	info, err := s.Snapshot(bg, path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Revision < rev || info.Size == 0 || info.Path != path {
		t.Fatalf("snapshot info %+v, want revision >= %d", info, rev)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("the snapshot is no bbolt file: %v", err)
	}
	defer db.Close()
	found := false
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("key")).ForEach(func(_, v []byte) error {
			found = found || bytes.Contains(v, []byte("/snap/hosts/h1"))
			return nil
		})
	})
	if !found {
		t.Fatal("the snapshot lacks the key written before it")
	}
}

const crashHelperEnv = "KAYO_ETCD_CRASH_HELPER"

// TestEtcdCrashedProcess: a process takes a lock under a 1s lease, writes
// an intent, keeps the lease alive and is killed with SIGKILL. Its lock
// vanishes within about the TTL; the intent stays; a successor takes the
// lock with a larger fencing token.
func TestEtcdCrashedProcess(t *testing.T) {
	if os.Getenv(crashHelperEnv) != "" {
		crashHelper()
		return
	}
	t.Parallel()
	c := etcdtest.Start(t, etcdtest.Options{})
	prefix := uniquePrefix(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestEtcdCrashedProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+strings.Join(c.Endpoints(), ",")+"|"+prefix)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "locked ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper said %q, %v", line, err)
	}
	token, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "locked ")), 10, 64)
	s := openEtcd(t, store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: prefix})
	// While the helper lives and renews, the lock holds past its TTL.
	time.Sleep(1500 * time.Millisecond)
	if _, err := s.Get(bg, "locks/vm1"); err != nil {
		t.Fatalf("lock of a live process: %v", err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	killed := time.Now()
	for {
		_, err := s.Get(bg, "locks/vm1")
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("lock of a killed process still there after 5s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("lock vanished %s after SIGKILL", time.Since(killed).Round(10*time.Millisecond))
	if kv, err := s.Get(bg, "intents/vm1"); err != nil || string(kv.Value) != "migrate" {
		t.Fatalf("intent after the crash: %v, %v", kv, err)
	}
	rev, err := s.Commit(bg, []store.Cmp{store.Absent("locks/vm1")}, []store.Op{store.Put("locks/vm1", []byte("successor"))})
	if err != nil || rev <= token {
		t.Fatalf("successor's lock at revision %d (crashed holder's token %d): %v", rev, token, err)
	}
}

func crashHelper() {
	eps, prefix, _ := strings.Cut(os.Getenv(crashHelperEnv), "|")
	s, err := store.OpenEtcd(bg, store.EtcdOptions{Endpoints: strings.Split(eps, ","), Prefix: prefix})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	id, err := s.Grant(bg, time.Second)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	rev, err := s.Commit(bg, []store.Cmp{store.Absent("locks/vm1")},
		[]store.Op{store.PutLease("locks/vm1", []byte("helper"), id), store.Put("intents/vm1", []byte("migrate"))})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("locked", rev)
	for {
		time.Sleep(300 * time.Millisecond)
		if err := s.KeepAlive(bg, id); err != nil {
			os.Exit(1)
		}
	}
}
