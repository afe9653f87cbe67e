package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
)

// fakeClock is an injected clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newClocked is an engine on a memstore with a clock the test moves; dir,
// when not empty, is its data dir (for the embedded SAN).
func newClocked(t *testing.T, dir string) (*Engine, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: fixedNow}
	st := memstore.New()
	st.SetClock(clk.Now) // store leases expire by the same clock
	e, err := openT(Config{Store: st, Clock: clk.Now, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, clk
}

// threeNodes registers Y-21..Y-23 and forms HVCLUSTER of them.
func threeNodes(t *testing.T, e *Engine, timeout int) {
	t.Helper()
	mustHosts(t, e, seedSpec("Y-21-2k8x64", 21), seedSpec("Y-22-2k8x64", 22), seedSpec("Y-23-2k8x64", 23))
	s := seedCluster("HVCLUSTER", "Y-21-2k8x64", "Y-22-2k8x64", "Y-23-2k8x64")
	s.HeartbeatTimeoutSeconds = timeout
	if _, err := e.CreateCluster(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func kinds(t *testing.T, e *Engine, prefixes ...string) []string {
	t.Helper()
	evs, err := e.Events(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		for _, p := range prefixes {
			if strings.HasPrefix(ev.Kind, p) {
				out = append(out, ev.Kind+" "+ev.Subject)
				break
			}
		}
	}
	return out
}

func TestDecideLiveness(t *testing.T) {
	now := fixedNow
	timeout := 10 * time.Second
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	cases := []struct {
		name string
		node NodeLiveness
		want string // "", "down", "up"
	}{
		{"fresh", NodeLiveness{Name: "A", LastHeartbeat: ago(time.Second)}, ""},
		{"exactly at timeout", NodeLiveness{Name: "A", LastHeartbeat: ago(timeout)}, ""},
		{"silent past timeout", NodeLiveness{Name: "A", LastHeartbeat: ago(timeout + time.Millisecond)}, "down"},
		{"never heartbeat: unmonitored", NodeLiveness{Name: "A"}, ""},
		{"already down, still silent", NodeLiveness{Name: "A", Down: true, DownReason: DownByHeartbeat,
			DownSince: ago(time.Second), LastHeartbeat: ago(timeout + 2*time.Second)}, ""},
		{"heartbeat returned", NodeLiveness{Name: "A", Down: true, DownReason: DownByHeartbeat,
			DownSince: ago(5 * time.Second), LastHeartbeat: ago(time.Second)}, "up"},
		{"heartbeat older than the down verdict", NodeLiveness{Name: "A", Down: true, DownReason: DownByHeartbeat,
			DownSince: ago(time.Second), LastHeartbeat: ago(2 * time.Second)}, ""},
		{"lab-failed stays down despite heartbeats", NodeLiveness{Name: "A", Down: true, DownReason: DownByLab,
			DownSince: ago(5 * time.Second), LastHeartbeat: ago(time.Second)}, ""},
		// On store leases the alive key decides, whatever the record's time.
		{"leased, alive, record old", NodeLiveness{Name: "A", LastHeartbeat: ago(time.Hour), Leased: true, Alive: true}, ""},
		{"leased, key expired, record fresh", NodeLiveness{Name: "A", LastHeartbeat: ago(time.Second), Leased: true}, "down"},
		{"leased, back after a down verdict", NodeLiveness{Name: "A", Down: true, DownReason: DownByHeartbeat,
			DownSince: ago(time.Second), LastHeartbeat: ago(time.Hour), Leased: true, Alive: true}, "up"},
		{"leased, still gone", NodeLiveness{Name: "A", Down: true, DownReason: DownByHeartbeat,
			DownSince: ago(time.Second), LastHeartbeat: ago(time.Second), Leased: true}, ""},
		{"leased, lab-failed stays down", NodeLiveness{Name: "A", Down: true, DownReason: DownByLab,
			LastHeartbeat: ago(time.Second), Leased: true, Alive: true}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := DecideLiveness([]NodeLiveness{tc.node}, timeout, now)
			verdict := ""
			if len(got) == 1 {
				verdict = map[bool]string{true: "down", false: "up"}[got[0].Down]
			} else if len(got) > 1 {
				t.Fatalf("%d decisions for one node", len(got))
			}
			if verdict != tc.want {
				t.Fatalf("verdict %q, want %q (%+v)", verdict, tc.want, got)
			}
		})
	}
	// Several nodes: sorted by name.
	got := DecideLiveness([]NodeLiveness{
		{Name: "C", LastHeartbeat: ago(time.Minute)},
		{Name: "A", LastHeartbeat: ago(time.Minute)},
		{Name: "B", LastHeartbeat: ago(time.Second)},
	}, timeout, now)
	if len(got) != 2 || got[0].Node != "A" || got[1].Node != "C" || got[0].Silent != time.Minute {
		t.Fatalf("got %+v", got)
	}
}

func TestEvaluateQuorum(t *testing.T) {
	node := func(name string, down bool) Host { return Host{HostSpec: HostSpec{Name: name}, Down: down} }
	cases := []struct {
		spec     QuorumSpec
		down     int
		nodes    int
		has      bool
		present  int
		nodeVote int
	}{
		{QuorumSpec{Type: "node_majority"}, 0, 2, true, 2, 1},
		{QuorumSpec{Type: "node_majority"}, 1, 2, false, 1, 1},
		{QuorumSpec{Type: "node_majority"}, 1, 3, true, 2, 1},
		{QuorumSpec{Type: "node_majority"}, 2, 3, false, 1, 1},
		{QuorumSpec{Type: "node_and_file_share_majority", WitnessShare: `\\fs\w`}, 1, 2, true, 2, 1},
		{QuorumSpec{Type: "node_and_disk_majority", WitnessDisk: "w"}, 2, 4, true, 3, 1},
		{QuorumSpec{Type: "node_and_disk_majority", WitnessDisk: "w"}, 3, 4, false, 2, 1},
		{QuorumSpec{Type: "disk_only", WitnessDisk: "w"}, 2, 3, true, 1, 0},
		{QuorumSpec{Type: "disk_only", WitnessDisk: "w"}, 3, 3, false, 1, 0},
		{QuorumSpec{Type: "node_majority"}, 0, 1, true, 1, 1},
	}
	for _, tc := range cases {
		var nodes []Host
		for i := 0; i < tc.nodes; i++ {
			nodes = append(nodes, node(fmt.Sprintf("N%02d", i), i < tc.down))
		}
		st, err := EvaluateQuorum(tc.spec, nodes)
		if err != nil {
			t.Fatal(err)
		}
		if st.HasQuorum != tc.has || st.VotesPresent != tc.present || st.NodeVotes != tc.nodeVote ||
			st.NodesUp != tc.nodes-tc.down || len(st.Down) != tc.down {
			t.Errorf("%s, %d of %d down: got %+v", tc.spec.Type, tc.down, tc.nodes, st)
		}
	}
	if _, err := EvaluateQuorum(QuorumSpec{Type: "majority"}, []Host{node("A", false)}); err == nil {
		t.Error("an unknown type evaluated")
	}
}

func TestCheckQuorumSpec(t *testing.T) {
	cases := []struct {
		spec      QuorumSpec
		attr, val string
	}{
		{QuorumSpec{Type: "node_majority"}, "", ""},
		{QuorumSpec{Type: "node_and_disk_majority", WitnessDisk: "witness"}, "", ""},
		{QuorumSpec{Type: "node_and_file_share_majority", WitnessShare: `\\fs01\witness`}, "", ""},
		{QuorumSpec{Type: "disk_only", WitnessDisk: "/dev/sdq"}, "", ""},
		{QuorumSpec{Type: "majority"}, "type", "majority"},
		{QuorumSpec{Type: "node_and_disk_majority"}, "witness_disk", ""},
		{QuorumSpec{Type: "node_and_file_share_majority"}, "witness_share", ""},
		{QuorumSpec{Type: "node_majority", WitnessDisk: "w"}, "witness_disk", "w"},
		{QuorumSpec{Type: "node_majority", WitnessShare: `\\a\b`}, "witness_share", `\\a\b`},
		{QuorumSpec{Type: "node_and_file_share_majority", WitnessShare: "//fs/w"}, "witness_share", "//fs/w"},
		{QuorumSpec{Type: "disk_only", WitnessDisk: "bad name"}, "witness_disk", "bad name"},
	}
	for _, tc := range cases {
		err := CheckQuorumSpec(tc.spec, 2)
		if tc.attr == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.spec, err)
			}
			continue
		}
		var ie *InputError
		if !errors.As(err, &ie) || ie.Attribute != tc.attr || ie.Value != tc.val || !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: got %#v (%v), want attribute %s value %q", tc.spec, ie, err, tc.attr, tc.val)
			continue
		}
		if !strings.Contains(err.Error(), "allowed") && !strings.Contains(err.Error(), "required") &&
			!strings.Contains(err.Error(), "not allowed") {
			t.Errorf("%+v: %q says nothing of what is allowed", tc.spec, err)
		}
	}
}

func TestQuorumLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, _ := newClocked(t, dir)
	threeNodes(t, e, 10)

	q, err := e.GetQuorum(ctx, "HVCLUSTER")
	if err != nil {
		t.Fatal(err)
	}
	if q.Managed || q.Type != "node_majority" || q.Status.TotalVotes != 3 || !q.Status.HasQuorum {
		t.Fatalf("implicit quorum: %+v", q)
	}
	// Create with a witness disk: the LUN is created sparse in the SAN.
	q, err = e.CreateQuorum(ctx, QuorumSpec{Cluster: "HVCLUSTER", Type: "node_and_disk_majority", WitnessDisk: "qwitness"})
	if err != nil {
		t.Fatal(err)
	}
	if q.Status.TotalVotes != 4 || q.Status.VotesNeeded != 3 || q.Status.FailuresTolerated != 1 {
		t.Fatalf("figures %+v", q.Status)
	}
	fi, err := os.Stat(filepath.Join(dir, "san", "qwitness.img"))
	if err != nil || fi.Size() != WitnessDiskSize {
		t.Fatalf("witness LUN: %v %v", fi, err)
	}
	// A second one is refused, pointing to import.
	_, err = e.CreateQuorum(ctx, QuorumSpec{Cluster: "HVCLUSTER", Type: "node_majority"})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "terraform import kayo_quorum.NAME HVCLUSTER") {
		t.Fatalf("second quorum: %v", err)
	}
	// Update in place.
	if _, err = e.UpdateQuorum(ctx, QuorumSpec{Cluster: "HVCLUSTER", Type: "node_and_file_share_majority", WitnessShare: `\\fs01\q`}); err != nil {
		t.Fatal(err)
	}
	q, _ = e.GetQuorum(ctx, "HVCLUSTER")
	if !q.Managed || q.WitnessShare != `\\fs01\q` || q.WitnessDisk != "" {
		t.Fatalf("after update: %+v", q)
	}
	// Reset: back to node_majority.
	if err := e.ResetQuorum(ctx, "HVCLUSTER"); err != nil {
		t.Fatal(err)
	}
	q, _ = e.GetQuorum(ctx, "HVCLUSTER")
	if q.Managed || q.Type != "node_majority" {
		t.Fatalf("after reset: %+v", q)
	}
	got := strings.Join(kinds(t, e, "quorum."), "; ")
	want := "quorum.configured HVCLUSTER; quorum.configured HVCLUSTER; quorum.reset HVCLUSTER"
	if got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	// A Kayo FS data volume is no witness.
	dev, err := kayofs.CreateImage(e.LUNPath("data0"), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kayofs.Format(dev, kayofs.FormatOptions{Label: "VMSTORE", Slots: 4}); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	_, err = e.CreateQuorum(ctx, QuorumSpec{Cluster: "HVCLUSTER", Type: "disk_only", WitnessDisk: "data0"})
	var ie *InputError
	if !errors.As(err, &ie) || ie.Attribute != "witness_disk" || !strings.Contains(err.Error(), "Kayo FS") {
		t.Fatalf("Kayo FS volume as witness: %v", err)
	}
	// A node count the cluster lacks is judged against the cluster: and an
	// absent block device is refused.
	_, err = e.CreateQuorum(ctx, QuorumSpec{Cluster: "HVCLUSTER", Type: "disk_only", WitnessDisk: "/dev/kayo-no-such-disk"})
	if !errors.As(err, &ie) || ie.Attribute != "witness_disk" {
		t.Fatalf("absent block device: %v", err)
	}
	// Another cluster cannot use this cluster's witness disk.
	if _, err := e.CreateQuorum(ctx, QuorumSpec{Cluster: "HVCLUSTER", Type: "node_and_disk_majority", WitnessDisk: "qwitness"}); err != nil {
		t.Fatal(err)
	}
	mustHosts(t, e, seedSpec("Y-31", 31), seedSpec("Y-32", 32))
	c2 := seedCluster("OTHER", "Y-31", "Y-32")
	c2.StaticAddress = "192.0.2.60/24"
	if _, err := e.CreateCluster(ctx, c2); err != nil {
		t.Fatal(err)
	}
	_, err = e.CreateQuorum(ctx, QuorumSpec{Cluster: "OTHER", Type: "node_and_disk_majority", WitnessDisk: "qwitness"})
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), `witness disk of cluster "HVCLUSTER"`) {
		t.Fatalf("shared witness: %v", err)
	}
	// Destroying the cluster removes its quorum record.
	if err := e.DeleteCluster(ctx, "HVCLUSTER"); err != nil {
		t.Fatal(err)
	}
	if owner, _ := e.WitnessOf(ctx, "qwitness"); owner != "" {
		t.Fatalf("witness still owned by %q after the cluster went", owner)
	}
}

func TestMarkHostDownQuorumLost(t *testing.T) {
	ctx := context.Background()
	e, _ := newClocked(t, "")
	threeNodes(t, e, 10)

	if changed, err := e.MarkHostDown(ctx, "Y-23-2k8x64", DownByLab); err != nil || !changed {
		t.Fatalf("fail Y-23: %v %v", changed, err)
	}
	if changed, err := e.MarkHostDown(ctx, "Y-23-2k8x64", DownByLab); err != nil || changed {
		t.Fatalf("fail Y-23 again: %v %v", changed, err)
	}
	h, _ := e.GetHost(ctx, "Y-23-2k8x64")
	if h.State() != HostDown || h.DownReason != DownByLab || !h.DownSince.Equal(fixedNow) {
		t.Fatalf("Y-23: %+v", h)
	}
	// Two of three up: quorum holds; changes go through.
	q, _ := e.GetQuorum(ctx, "HVCLUSTER")
	if !q.Status.HasQuorum || q.Status.VotesPresent != 2 {
		t.Fatalf("%+v", q.Status)
	}
	// Removing an up node now would lose quorum (2 nodes, 1 up).
	_, err := e.UpdateCluster(ctx, seedCluster("HVCLUSTER", "Y-21-2k8x64", "Y-23-2k8x64"))
	if !errors.Is(err, ErrQuorumLost) || !strings.Contains(err.Error(), "would leave") {
		t.Fatalf("removing an up node: %v", err)
	}
	// Second node down: quorum lost, recorded as an event.
	if _, err := e.MarkHostDown(ctx, "Y-22-2k8x64", DownByLab); err != nil {
		t.Fatal(err)
	}
	q, _ = e.GetQuorum(ctx, "HVCLUSTER")
	if q.Status.HasQuorum {
		t.Fatalf("quorum with 1 of 3 up: %+v", q.Status)
	}
	// Changes to the cluster are refused with ErrQuorumLost.
	_, err = e.UpdateCluster(ctx, seedCluster("HVCLUSTER", "Y-21-2k8x64", "Y-22-2k8x64", "Y-23-2k8x64"))
	if !errors.Is(err, ErrQuorumLost) || !strings.Contains(err.Error(), "1 of 3 votes present, 2 needed") {
		t.Fatalf("update without quorum: %v", err)
	}
	_, err = e.UpdateQuorum(ctx, QuorumSpec{Cluster: "HVCLUSTER", Type: "node_and_file_share_majority", WitnessShare: `\\fs\w`})
	if !errors.Is(err, ErrQuorumLost) {
		t.Fatalf("quorum change without quorum: %v", err)
	}
	spec := seedSpec("Y-21-2k8x64", 21)
	spec.Maintenance = true
	if _, err := e.UpdateHost(ctx, spec); !errors.Is(err, ErrQuorumLost) {
		t.Fatalf("host change without quorum: %v", err)
	}
	if err := e.RequireQuorum(ctx, "HVCLUSTER", "creating volume O:"); !errors.Is(err, ErrQuorumLost) ||
		!strings.Contains(err.Error(), "creating volume O: is refused") {
		t.Fatalf("RequireQuorum: %v", err)
	}
	// Recover one: quorum regained.
	if _, err := e.MarkHostUp(ctx, "Y-22-2k8x64"); err != nil {
		t.Fatal(err)
	}
	if err := e.RequireQuorum(ctx, "HVCLUSTER", "x"); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(kinds(t, e, "host.down", "host.up", "quorum."), "; ")
	want := "host.down Y-23-2k8x64; host.down Y-22-2k8x64; quorum.lost HVCLUSTER; host.up Y-22-2k8x64; quorum.regained HVCLUSTER"
	if got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
	// Removing the down node keeps quorum (2 nodes, both up).
	if _, err := e.UpdateCluster(ctx, seedCluster("HVCLUSTER", "Y-21-2k8x64", "Y-22-2k8x64")); err != nil {
		t.Fatalf("removing the down node: %v", err)
	}
}
