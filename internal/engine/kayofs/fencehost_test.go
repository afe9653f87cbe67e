package kayofs

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// TestDiskLeasesFenceHostBeforeTakeover: with FenceHost set, a host takes
// a frozen holder's lease only after the storage fenced that holder (a
// write it had in flight could land otherwise), once per incarnation, and
// not at all while the fence fails.
func TestDiskLeasesFenceHostBeforeTakeover(t *testing.T) {
	img, _ := newLeaseImage(t)
	o := testLeaseOpts(t.Logf)
	a := openTestLeases(t, img, "A", o)
	k := keyAG(0)
	d := leaseDomainOf(k)
	if err := a.Lock(k, true); err != nil {
		t.Fatal(err)
	}
	a.Unlock(k, true)
	a.closeOnce.Do(func() { close(a.stop); <-a.done }) // A freezes holding the domain's lease
	t.Cleanup(func() { a.f.Close() })

	sanDown := errors.New("SAN unreachable")
	var mu sync.Mutex
	fails := true
	type call struct {
		node   string
		gen    uint64
		leader int
	}
	var calls []call
	var b *DiskLeases
	ob := o
	ob.FenceHost = func(node string, gen uint64) error {
		mu.Lock()
		defer mu.Unlock()
		if fails {
			return sanDown
		}
		calls = append(calls, call{node, gen, domainLeader(t, b, d).Owner})
		return nil
	}
	b = openTestLeases(t, img, "B", ob)
	t.Cleanup(func() { b.Close() })

	if ok, err := lockWithin(b, k, 2*(o.Timeout+o.Margin)+5*time.Second); ok || !errors.Is(err, sanDown) {
		t.Fatalf("B's lock while the fence fails: ok %v, %v; want the fence's error", ok, err)
	}
	if ld := domainLeader(t, b, d); ld.Owner != a.host+1 {
		t.Fatalf("B took domain %d without fencing A: leader %+v", d, ld)
	}
	mu.Lock()
	fails = false
	mu.Unlock()
	if ok, err := lockWithin(b, k, 2*(o.Timeout+o.Margin)+5*time.Second); !ok {
		t.Fatalf("B did not take domain %d once A was fenced: %v", d, err)
	}
	b.Unlock(k, true)
	if err := b.Lock(keyAG(1), true); err != nil {
		t.Fatal(err)
	}
	b.Unlock(keyAG(1), true)
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || calls[0].node != "A" || calls[0].gen != a.gen {
		t.Fatalf("fence calls %+v, want one for A generation %d", calls, a.gen)
	}
	if calls[0].leader != a.host+1 {
		t.Fatalf("the fence ran after B took the lease (leader owner %d)", calls[0].leader)
	}
}
