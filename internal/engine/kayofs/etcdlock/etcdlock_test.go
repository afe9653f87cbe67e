package etcdlock

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
)

func newVolume(t *testing.T) *kayofs.FileDevice {
	t.Helper()
	dev, err := kayofs.CreateImage(filepath.Join(t.TempDir(), "lun.img"), 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	if _, err := kayofs.Format(dev, kayofs.FormatOptions{Slots: 4}); err != nil {
		t.Fatal(err)
	}
	return dev
}

func check(t *testing.T, dev kayofs.Device) {
	t.Helper()
	probs, err := kayofs.Check(dev)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("check: %s", p)
	}
}

func data(node string, k int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("%s:%d;", node, k)), 4096)[:4096]
}

// TestEtcdLocksMountsShareVolume: two mounts, each with its own etcd
// lease (no kernel lock between them is used), create, write, fsync,
// rename and delete in one directory at once; every kept write is there
// and the volume checks clean.
func TestEtcdLocksMountsShareVolume(t *testing.T) {
	etcdtest.Require(t)
	c := etcdtest.Start(t, etcdtest.Options{})
	cli := c.Client(t, "", "")
	dev := newVolume(t)
	locks := New(Options{Client: cli, TTL: 5 * time.Second, Logf: t.Logf})
	var wg sync.WaitGroup
	var mu sync.Mutex
	want := map[string][]byte{}
	errs := make(chan error, 2)
	for _, node := range []string{"A", "B"} {
		v, err := kayofs.Mount(dev, node, kayofs.MountOptions{Locks: locks})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				defer v.Unmount()
				if err := v.MkdirAll("shared"); err != nil {
					return err
				}
				for k := 0; k < 40; k++ {
					name := fmt.Sprintf("shared/%s-%d", node, k)
					f, err := v.Create(name)
					if err != nil {
						return err
					}
					if _, err := f.WriteAt(data(node, k), 0); err != nil {
						return err
					}
					if err := f.Sync(); err != nil {
						return err
					}
					if k%4 == 3 {
						if err := v.Rename(name, name+".r"); err != nil {
							return err
						}
						name += ".r"
					}
					mu.Lock()
					want[name] = data(node, k)
					mu.Unlock()
					if k%3 == 2 {
						if err := v.Remove(name); err != nil {
							return err
						}
						mu.Lock()
						delete(want, name)
						mu.Unlock()
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	check(t, dev)
	v, err := kayofs.Mount(dev, "CHECK", kayofs.MountOptions{Locks: locks})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Unmount()
	ents, err := v.ReadDir("shared")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(want) {
		t.Errorf("%d files, %d kept", len(ents), len(want))
	}
	for name, d := range want {
		f, err := v.Open(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := make([]byte, len(d))
		if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, d) {
			t.Errorf("%s: content lost (%v)", name, err)
		}
	}
}

// TestEtcdLocksLostLeaseFences: when the mount's etcd lease is gone (here
// revoked behind its back, as when etcd expired it), the mount fences
// itself: every write fails with ErrFenced and its log says so; another
// node then gets the locks and the volume checks clean.
func TestEtcdLocksLostLeaseFences(t *testing.T) {
	etcdtest.Require(t)
	c := etcdtest.Start(t, etcdtest.Options{})
	cli := c.Client(t, "", "")
	dev := newVolume(t)
	var mu sync.Mutex
	var alog []string
	logf := func(f string, a ...any) {
		mu.Lock()
		alog = append(alog, fmt.Sprintf(f, a...))
		mu.Unlock()
	}
	var evs []kayofs.LeaseEvent
	onEvent := func(ev kayofs.LeaseEvent) {
		mu.Lock()
		evs = append(evs, ev)
		mu.Unlock()
	}
	a, err := kayofs.Mount(dev, "A", kayofs.MountOptions{Locks: New(Options{Client: cli, TTL: 5 * time.Second, Logf: logf, OnEvent: onEvent})})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Crash()
	if err := a.Mkdir("before"); err != nil {
		t.Fatal(err)
	}
	leases, err := cli.Leases(t.Context())
	if err != nil || len(leases.Leases) != 1 {
		t.Fatalf("leases: %v %v", leases, err)
	}
	if _, err := cli.Revoke(t.Context(), leases.Leases[0].ID); err != nil {
		t.Fatal(err)
	}
	var werr error
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if werr = a.Mkdir(fmt.Sprintf("after-%d", time.Now().UnixNano())); werr != nil {
			break
		}
	}
	if !errors.Is(werr, kayofs.ErrFenced) {
		t.Fatalf("write after the lease was lost: %v, want ErrFenced", werr)
	}
	if !errors.Is(a.Fenced(), kayofs.ErrFenced) {
		t.Errorf("Volume.Fenced after the lease was lost: %v", a.Fenced())
	}
	mu.Lock()
	said := strings.Join(alog, "\n")
	mu.Unlock()
	if !strings.Contains(said, "fenced itself") {
		t.Errorf("A's log does not say it fenced itself:\n%s", said)
	}
	b, err := kayofs.Mount(dev, "B", kayofs.MountOptions{Locks: New(Options{Client: cli, TTL: 5 * time.Second, Logf: t.Logf}),
		OnEvent: onEvent})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	var got []string
	for _, ev := range evs {
		got = append(got, fmt.Sprintf("%s %s %s", ev.Kind, ev.Node, ev.Peer))
	}
	mu.Unlock()
	if want := []string{"fenced A ", "recovered B A"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lease events %q, want %q (A fenced itself, B recovered A's slot)", got, want)
	}
	if err := b.Mkdir("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat("before"); err != nil {
		t.Errorf("A's write before the loss: %v", err)
	}
	if err := b.Unmount(); err != nil {
		t.Fatal(err)
	}
	check(t, dev)
}

// TestEtcdLocksDeadHolderRecoveryWait: A dies holding the metadata lock (its
// etcd lease stays until etcd expires it). B's mount waits for that lock
// and says so in a recovery_wait event naming B, A and A's slot, with the
// wait left; once etcd expired A's lease, B recovers A's slot.
func TestEtcdLocksDeadHolderRecoveryWait(t *testing.T) {
	etcdtest.Require(t)
	c := etcdtest.Start(t, etcdtest.Options{})
	cli := c.Client(t, "", "")
	dev := newVolume(t)
	var mu sync.Mutex
	var evs []kayofs.LeaseEvent
	onEvent := func(ev kayofs.LeaseEvent) {
		mu.Lock()
		evs = append(evs, ev)
		mu.Unlock()
	}
	const ttl = 4 * time.Second
	a, err := kayofs.Mount(dev, "A", kayofs.MountOptions{Locks: New(Options{Client: cli, TTL: ttl, Logf: t.Logf})})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Mkdir("before"); err != nil {
		t.Fatal(err)
	}
	aSlot := a.Slot()
	a.Crash() // the metadata lock stays held under A's lease
	start := time.Now()
	b, err := kayofs.Mount(dev, "B", kayofs.MountOptions{Locks: New(Options{Client: cli, TTL: ttl, Logf: t.Logf, OnEvent: onEvent}),
		OnEvent: onEvent})
	if err != nil {
		t.Fatal(err)
	}
	waited := time.Since(start)
	defer b.Unmount()
	mu.Lock()
	var got []string
	var wait *kayofs.LeaseEvent
	for i, ev := range evs {
		got = append(got, fmt.Sprintf("%s %s %s %d", ev.Kind, ev.Node, ev.Peer, ev.Slot))
		if ev.Kind == kayofs.LeaseRecoveryWait && wait == nil {
			wait = &evs[i]
		}
	}
	mu.Unlock()
	want := []string{fmt.Sprintf("recovery_wait B A %d", aSlot), fmt.Sprintf("recovered B A %d", aSlot)}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lease events %q, want %q (B waits for A's lease, then recovers A's slot)", got, want)
	}
	if wait.Lease != ttl || wait.Wait <= 0 || wait.Wait > ttl || !strings.Contains(wait.Why, "expires it in") {
		t.Errorf("recovery_wait event %+v: want lease %v and a wait in (0, %v] with the reason", *wait, ttl, ttl)
	}
	if waited < ttl/2 {
		t.Errorf("B mounted after %v, before A's lease (TTL %v) could have expired", waited, ttl)
	}
	if _, err := b.Stat("before"); err != nil {
		t.Errorf("A's write before it died: %v", err)
	}
	if err := b.Mkdir("b"); err != nil {
		t.Fatal(err)
	}
	check(t, dev)
}

// TestEtcdLocksDomainsDisjoint: on a version-3 volume two mounts writing
// their own files hold their file locks in etcd at once, each under its
// own lease (kayofs.LockDomain), instead of taking turns on one
// metadata lock; only the namespace lock is shared.
func TestEtcdLocksDomainsDisjoint(t *testing.T) {
	etcdtest.Require(t)
	c := etcdtest.Start(t, etcdtest.Options{})
	cli := c.Client(t, "", "")
	for _, ver := range []int{3, 2} {
		t.Run(fmt.Sprintf("version%d", ver), func(t *testing.T) { domainsDisjoint(t, cli, ver) })
	}
}

// domainsDisjoint: on a version-2 volume (which older binaries lock as
// one, and may mount beside this one) every key stays on one lock.
func domainsDisjoint(t *testing.T, cli *clientv3.Client, ver int) {
	dev, err := kayofs.CreateImage(filepath.Join(t.TempDir(), "lun.img"), 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	if _, err := kayofs.Format(dev, kayofs.FormatOptions{Slots: 4, Version: ver}); err != nil {
		t.Fatal(err)
	}
	locks := New(Options{Client: cli, TTL: 5 * time.Second, Logf: t.Logf})
	for _, node := range []string{"A", "B"} {
		v, err := kayofs.Mount(dev, node, kayofs.MountOptions{Locks: locks})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Unmount()
		if err := v.Mkdir(node); err != nil {
			t.Fatal(err)
		}
		f, err := v.Create(node + "/f")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(data(node, 0), 0); err != nil {
			t.Fatal(err)
		}
	}
	sb, err := kayofs.ReadSuperblock(dev)
	if err != nil {
		t.Fatal(err)
	}
	r, err := cli.Get(t.Context(), fmt.Sprintf("/kayo/kayofs/%s/lock/", sb.UUIDString()), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	holders := map[string]map[clientv3.LeaseID]bool{} // lock → leases with a key under it
	leases := map[clientv3.LeaseID]bool{}
	for _, kv := range r.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), fmt.Sprintf("/kayo/kayofs/%s/lock/", sb.UUIDString()))
		lock, _, _ := strings.Cut(rest, "/")
		if holders[lock] == nil {
			holders[lock] = map[clientv3.LeaseID]bool{}
		}
		holders[lock][clientv3.LeaseID(kv.Lease)] = true
		leases[clientv3.LeaseID(kv.Lease)] = true
	}
	if _, one := holders["meta"]; ver == 2 && (!one || len(holders) != 1) {
		t.Fatalf("version 2: etcd lock keys %v: want the one metadata lock only", holders)
	}
	if _, one := holders["meta"]; ver == 3 && (one || len(leases) != 2) {
		t.Fatalf("version 3: etcd lock keys %v: want locks held by both mounts at once, no single metadata lock", holders)
	}
	check(t, dev)
}
