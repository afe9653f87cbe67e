package kayofs

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// openTestLeases opens a lease manager of node on img as a mount would.
func openTestLeases(t *testing.T, img, node string, o DiskLeaseOptions) *DiskLeases {
	t.Helper()
	d, err := OpenDeviceDirect(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	o.defaults()
	m, err := openDiskLeases(d, node, o)
	if err != nil {
		t.Fatalf("lease manager of %s: %v", node, err)
	}
	return m
}

// lockWithin runs m.Lock(k) and reports whether it returned within d
// (false: it still waits, or failed); the lock, if taken later, stays.
func lockWithin(m *DiskLeases, k LockKey, d time.Duration) (bool, error) {
	done := make(chan error, 1)
	go func() { done <- m.Lock(k, true) }()
	select {
	case err := <-done:
		return err == nil, err
	case <-time.After(d):
		return false, nil
	}
}

// domainLeader reads lease domain d's leader record from disk.
func domainLeader(t *testing.T, m *DiskLeases, d int) leaderRec {
	t.Helper()
	b, err := m.readRecs(m.recLeaderOf(d), 1)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := decLeader(b, m.uuid)
	if err != nil {
		t.Fatal(err)
	}
	return ld
}

// TestDiskLeasesDomainsHeldAtOnce: on a version-4 volume two hosts hold
// the leases of different domains (each its own groups and inode runs) at
// the same time, in use; one host's domain is refused to the other while
// its holder renews, and taken over only once the holder stopped renewing
// and fenced itself (it then fails every lock), with the taker's own
// domain held throughout.
func TestDiskLeasesDomainsHeldAtOnce(t *testing.T) {
	img, _ := newLeaseImage(t)
	var mu sync.Mutex
	var evs []LeaseEvent
	o := testLeaseOpts(t.Logf)
	ob := o
	ob.OnEvent = func(ev LeaseEvent) { mu.Lock(); evs = append(evs, ev); mu.Unlock() }
	a := openTestLeases(t, img, "A", o)
	b := openTestLeases(t, img, "B", ob)
	t.Cleanup(func() { b.Close() })

	// A's and B's first groups and inode runs (slots 0 and 1), in use at once
	aKeys := []LockKey{keyAG(0), keyInode(2), keyFile(2)}
	bKeys := []LockKey{keyAG(16), keyInode(inoChunk), keyFile(inoChunk)}
	for _, k := range aKeys {
		if ok, err := lockWithin(a, k, 5*time.Second); !ok {
			t.Fatalf("A: lock %#x: %v", k, err)
		}
	}
	for _, k := range bKeys {
		if ok, err := lockWithin(b, k, 5*time.Second); !ok {
			t.Fatalf("B: lock %#x while A holds %v: not granted (%v): the domains serialize", k, a.heldDomains(), err)
		}
	}
	ha, hb := a.heldDomains(), b.heldDomains()
	t.Logf("A holds domains %v, B holds %v", ha, hb)
	for _, d := range ha {
		if slices.Contains(hb, d) {
			t.Fatalf("domain %d held by both A and B", d)
		}
	}
	for _, c := range []struct {
		m  *DiskLeases
		ds []int
	}{{a, ha}, {b, hb}} {
		if len(c.ds) != 2 {
			t.Fatalf("%s holds domains %v, want its group's and its inode run's", c.m.node, c.ds)
		}
		for _, d := range c.ds {
			if ld := domainLeader(t, a, d); ld.Free || ld.Owner != c.m.host+1 || ld.Gen != c.m.gen {
				t.Errorf("domain %d's leader on disk %+v, want %s (host %d, gen %d) holding it", d, ld, c.m.node, c.m.host, c.m.gen)
			}
		}
	}

	// each one's domain is refused to the other while its holder is live
	if got, err := b.TryLock(keyAG(1)); got || err != nil {
		t.Fatalf("B took A's group domain while A holds it: %v %v", got, err)
	}
	if got, err := a.TryLock(keyAG(17)); got || err != nil {
		t.Fatalf("A took B's group domain while B holds it: %v %v", got, err)
	}
	if ok, _ := lockWithin(b, keyAG(1), o.Timeout+o.Margin+time.Second); ok {
		t.Fatal("B's blocking lock of A's domain was granted while A renews its lease")
	}
	// the lock above keeps waiting in the background; freeze A (its
	// renewals stop, its holds stay on disk, as SIGSTOP does)
	a.closeOnce.Do(func() { close(a.stop); <-a.done })
	t.Cleanup(func() { a.f.Close() })
	frozen := time.Now()
	for {
		b.mu.Lock()
		got := b.doms[ldGroupFirst].held
		b.mu.Unlock()
		if got {
			break
		}
		if time.Since(frozen) > 3*(o.Timeout+o.Margin) {
			t.Fatalf("B never took over A's group domain after A froze")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.Fenced(); !errors.Is(err, ErrFenced) {
		t.Fatalf("B took over A's domain while A did not count itself fenced: %v", err)
	}
	if err := a.Lock(keyAG(17), true); !errors.Is(err, ErrFenced) {
		t.Errorf("fenced A locked a domain: %v", err)
	}
	if err := b.Fenced(); err != nil {
		t.Fatalf("B fenced: %v", err)
	}
	if ld := domainLeader(t, b, ldGroupFirst); ld.Free || ld.Owner != b.host+1 || ld.Gen != b.gen {
		t.Errorf("A's former domain's leader %+v, want B's", ld)
	}
	for _, d := range hb {
		if ld := domainLeader(t, b, d); ld.Free || ld.Owner != b.host+1 {
			t.Errorf("B's own domain %d's leader %+v: B lost it during the takeover", d, ld)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var waited bool
	for _, ev := range evs {
		if ev.Kind == LeaseRecoveryWait && ev.Peer == "A" {
			waited = true
			if ev.Wait <= 0 || ev.Wait >= o.Timeout+o.Margin {
				t.Errorf("recovery wait %v, want 0 < wait < %v", ev.Wait, o.Timeout+o.Margin)
			}
		}
	}
	if !waited {
		t.Errorf("B took over A's domain without a %s event naming A: %+v", LeaseRecoveryWait, evs)
	}
}

// TestDiskLeasesVersion3OneLease: a version-3 volume keeps the one
// metadata lease (binaries before version 4 may mount it at the same
// time): another host's group is refused while one host holds any key.
func TestDiskLeasesVersion3OneLease(t *testing.T) {
	img, _ := newLeaseImageVersion(t, 3)
	o := testLeaseOpts(t.Logf)
	a := openTestLeases(t, img, "A", o)
	b := openTestLeases(t, img, "B", o)
	t.Cleanup(func() { a.Close(); b.Close() })
	if a.perDomain || len(a.doms) != 1 {
		t.Fatalf("version 3: per-domain leases %v (%d)", a.perDomain, len(a.doms))
	}
	if err := a.Lock(keyAG(0), true); err != nil {
		t.Fatal(err)
	}
	if got, err := b.TryLock(keyAG(16)); got || err != nil {
		t.Fatalf("version 3: B took a group while A holds the metadata lease: %v %v", got, err)
	}
	if ld := domainLeader(t, b, 0); ld.Free || ld.Owner != a.host+1 || b.recLeaderOf(0) != recLeader {
		t.Errorf("version 3: metadata leader %+v at record %d, want A's at %d", ld, b.recLeaderOf(0), recLeader)
	}
}

// TestLeaseDomainOf: the slot table and namespace share domain 0; each
// slot's home inode run (up to 15 slots) has a domain of its own; groups
// map onto domains in ascending order (the lock order) and never onto
// another class's.
func TestLeaseDomainOf(t *testing.T) {
	if leaseDomainOf(keySlotTable) != ldNS || leaseDomainOf(keyNS) != ldNS {
		t.Error("slot table and namespace must be domain 0")
	}
	seen := map[int]int{}
	for s := 0; s < ldInodeCount; s++ {
		ino := uint32(s * inoChunk)
		d := leaseDomainOf(keyInode(ino))
		if d != leaseDomainOf(keyFile(ino)) || d < ldInodeFirst || d >= ldGroupFirst {
			t.Errorf("slot %d's run: inode/file domains %d/%d", s, d, leaseDomainOf(keyFile(ino)))
		}
		if p, ok := seen[d]; ok {
			t.Errorf("slots %d and %d share inode domain %d", p, s, d)
		}
		seen[d] = s
	}
	prev := ldGroupFirst
	for g := uint32(0); g < 1000; g++ {
		d := leaseDomainOf(keyAG(g))
		if d < prev || d >= ldRecovery {
			t.Fatalf("group %d: domain %d after %d (want ascending within %d..%d)", g, d, prev, ldGroupFirst, ldRecovery-1)
		}
		prev = d
	}
}

// TestDiskLeasesRecoveryExclusive: on a version-4 volume two hosts that
// hold different domains (so neither excludes the other by its lock) do
// not recover one slot at once: the second BeginRecovery waits for the
// first's EndRecovery, then judges the slot again.
func TestDiskLeasesRecoveryExclusive(t *testing.T) {
	img, _ := newLeaseImage(t)
	o := testLeaseOpts(t.Logf)
	a := openTestLeases(t, img, "A", o)
	b := openTestLeases(t, img, "B", o)
	t.Cleanup(func() { a.Close(); b.Close() })
	if err := a.Lock(keyAG(0), true); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock(keyAG(16), true); err != nil {
		t.Fatal(err)
	}
	const slot = 3 // never mounted: no owner
	if got, err := a.BeginRecovery(slot); !got || err != nil {
		t.Fatalf("A: begin recovery of ownerless slot %d: %v %v", slot, got, err)
	}
	done := make(chan error, 1)
	go func() {
		got, err := b.BeginRecovery(slot)
		if err == nil && !got {
			err = errors.New("B judged the ownerless slot owned")
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("B began recovering slot %d while A recovers it (%v)", slot, err)
	case <-time.After(2 * DefaultMinHold):
	}
	a.EndRecovery(slot)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(o.Timeout):
		t.Fatal("B's recovery never began after A ended its own")
	}
	b.EndRecovery(slot)
	if slices.Contains(a.heldDomains(), ldRecovery) {
		t.Error("A kept the recovery lease B holds")
	}
}

// TestDiskLeasesFrozenMidBallotWritesNothing: a host frozen in the middle
// of a ballot (after its loop's fence check, before its writes: SIGSTOP,
// a stalled VM) whose lease another host took meanwhile writes nothing
// when it resumes, neither its Disk Paxos block nor a leader record nor a
// request; every write fails with ErrFenced. Before each lease write
// checked the fence, the resumed ballot wrote its block (the torture
// test's frozen guest changed the image after its lease was taken).
func TestDiskLeasesFrozenMidBallotWritesNothing(t *testing.T) {
	img, _ := newLeaseImage(t)
	o := testLeaseOpts(t.Logf)
	a := openTestLeases(t, img, "A", o)
	b := openTestLeases(t, img, "B", o)
	t.Cleanup(func() { b.Close() })
	k := keyAG(0)
	d := leaseDomainOf(k)
	// A holds the domain's lease (idle, kept until asked for), reads its
	// leader again for its next ballot, then freezes: its renewals stop,
	// as do the ballot's next steps
	if err := a.Lock(k, true); err != nil {
		t.Fatal(err)
	}
	a.Unlock(k, true)
	stale := domainLeader(t, a, d)
	if stale.Owner != a.host+1 {
		t.Fatalf("domain %d's leader %+v, want A holding it", d, stale)
	}
	a.closeOnce.Do(func() { close(a.stop); <-a.done })
	t.Cleanup(func() { a.f.Close() })
	if ok, err := lockWithin(b, k, 2*(o.Timeout+o.Margin)+5*time.Second); !ok {
		t.Fatalf("B did not take domain %d after A froze: %v", d, err)
	}
	took := domainLeader(t, b, d)
	read := func() []byte {
		x, err := a.readRecs(recHostDblock0+a.host, 1)
		if err != nil {
			t.Fatal(err)
		}
		y, err := a.readRecs(a.recLeaderOf(d), 1)
		if err != nil {
			t.Fatal(err)
		}
		z, err := a.readRecs(a.recRequestOf(d), 1)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Concat(x, y, z)
	}
	before := read()
	// A resumes where it stopped: the ballot for the version it read
	if _, err := a.ballot(a.doms[d], stale.Lver+1); !errors.Is(err, ErrFenced) {
		t.Errorf("A's resumed ballot: %v, want ErrFenced", err)
	}
	if err := a.writeRequest(a.doms[d]); !errors.Is(err, ErrFenced) {
		t.Errorf("A's request after the freeze: %v, want ErrFenced", err)
	}
	if after := read(); !slices.Equal(before, after) {
		t.Fatal("A wrote to the lease area after B took its lease")
	}
	if ld := domainLeader(t, b, d); ld != took {
		t.Fatalf("domain %d's leader changed after A resumed: %+v, was %+v", d, ld, took)
	}
}
