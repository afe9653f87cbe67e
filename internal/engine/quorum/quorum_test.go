package quorum

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseType(t *testing.T) {
	for _, ty := range Types {
		got, err := ParseType(string(ty))
		if err != nil || got != ty {
			t.Errorf("ParseType(%q) = %q, %v", ty, got, err)
		}
	}
	for _, bad := range []string{"", "NodeMajority", "node-majority", "majority", "Node_Majority"} {
		_, err := ParseType(bad)
		if err == nil {
			t.Fatalf("ParseType(%q): want error", bad)
		}
		msg := err.Error()
		if !strings.Contains(msg, fmt.Sprintf("%q", bad)) {
			t.Errorf("error %q does not name the value", msg)
		}
		for _, ty := range Types {
			if !strings.Contains(msg, string(ty)) {
				t.Errorf("error %q does not list %s", msg, ty)
			}
		}
	}
}

// Figures for the well-known cases of the Windows Server 2008 documentation.
func TestComputeKnownCases(t *testing.T) {
	cases := []struct {
		c    Config
		want Figures
	}{
		{Config{NodeMajority, 1, false}, Figures{1, 1, 0}},
		{Config{NodeMajority, 2, false}, Figures{2, 2, 0}},
		{Config{NodeMajority, 3, false}, Figures{3, 2, 1}},
		{Config{NodeMajority, 4, false}, Figures{4, 3, 1}},
		{Config{NodeMajority, 5, false}, Figures{5, 3, 2}},
		{Config{NodeMajority, 16, false}, Figures{16, 9, 7}},
		{Config{NodeAndDiskMajority, 2, true}, Figures{3, 2, 1}},
		{Config{NodeAndFileShareMajority, 2, true}, Figures{3, 2, 1}},
		{Config{NodeAndDiskMajority, 4, true}, Figures{5, 3, 2}},
		{Config{NodeAndFileShareMajority, 16, true}, Figures{17, 9, 8}},
		{Config{NodeAndDiskMajority, 1, true}, Figures{2, 2, 0}},
		{Config{DiskOnly, 1, true}, Figures{1, 1, 0}},
		{Config{DiskOnly, 2, true}, Figures{1, 1, 1}},
		{Config{DiskOnly, 16, true}, Figures{1, 1, 15}},
	}
	for _, tc := range cases {
		got, err := Compute(tc.c)
		if err != nil || got != tc.want {
			t.Errorf("Compute(%+v) = %+v, %v; want %+v", tc.c, got, err, tc.want)
		}
	}
}

// Every type, 1..16 nodes, with and without a witness: either a documented
// error or figures consistent with HasQuorum, checked by brute force.
func TestComputeAllModes(t *testing.T) {
	for _, ty := range Types {
		for n := 0; n <= 17; n++ {
			for _, w := range []bool{false, true} {
				c := Config{ty, n, w}
				name := fmt.Sprintf("%s/%d/witness=%v", ty, n, w)
				t.Run(name, func(t *testing.T) {
					f, err := Compute(c)
					wantErr := n < 1 || n > 16 || w != ty.NeedsWitness()
					if wantErr {
						if err == nil {
							t.Fatalf("want error, got %+v", f)
						}
						if HasQuorum(c, n, true) {
							t.Fatal("invalid config has quorum")
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					// Closed forms.
					switch ty {
					case DiskOnly:
						if f != (Figures{1, 1, n - 1}) {
							t.Fatalf("got %+v", f)
						}
					default:
						total := n
						if w {
							total++
						}
						if f.TotalVotes != total || f.VotesNeeded != total/2+1 || f.FailuresTolerated != total-(total/2+1) {
							t.Fatalf("got %+v", f)
						}
						if 2*f.VotesNeeded <= f.TotalVotes {
							t.Fatalf("needed %d is not a strict majority of %d", f.VotesNeeded, f.TotalVotes)
						}
					}
					// FailuresTolerated = node failures survivable while the witness is up.
					for down := 0; down <= n; down++ {
						got := HasQuorum(c, n-down, true)
						want := down <= f.FailuresTolerated
						if got != want {
							t.Errorf("%d nodes down, witness up: HasQuorum=%v want %v", down, got, want)
						}
					}
					// Witness down.
					for up := 0; up <= n; up++ {
						got := HasQuorum(c, up, false)
						var want bool
						switch ty {
						case DiskOnly:
							want = false
						case NodeMajority:
							want = up >= f.VotesNeeded
						default:
							want = up >= f.VotesNeeded // the witness vote is lost
						}
						if got != want {
							t.Errorf("%d nodes up, witness down: HasQuorum=%v want %v", up, got, want)
						}
					}
					if HasQuorum(c, -1, true) || HasQuorum(c, n+1, true) {
						t.Error("out-of-range nodesUp has quorum")
					}
					// No two disjoint partitions can both have quorum (no split brain):
					// split the nodes in two; the witness goes to at most one side.
					for a := 0; a <= n; a++ {
						for _, wa := range []bool{false, true} {
							if HasQuorum(c, a, wa) && HasQuorum(c, n-a, !wa) {
								t.Errorf("split %d/%d (witness on first: %v): both sides have quorum", a, n-a, wa)
							}
						}
					}
				})
			}
		}
	}
}

func TestComputeErrors(t *testing.T) {
	cases := []struct {
		c        Config
		contains []string
	}{
		{Config{"bogus", 3, false}, []string{`"bogus"`, "node_majority"}},
		{Config{NodeMajority, 0, false}, []string{"nodes", "1 to 16", "0"}},
		{Config{NodeMajority, 17, false}, []string{"nodes", "17"}},
		{Config{NodeMajority, 3, true}, []string{"no witness"}},
		{Config{NodeAndDiskMajority, 3, false}, []string{"witness_disk"}},
		{Config{DiskOnly, 3, false}, []string{"witness_disk"}},
		{Config{NodeAndFileShareMajority, 3, false}, []string{"witness_share"}},
	}
	for _, tc := range cases {
		_, err := Compute(tc.c)
		if err == nil {
			t.Errorf("Compute(%+v): want error", tc.c)
			continue
		}
		for _, s := range tc.contains {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Compute(%+v) error %q lacks %q", tc.c, err, s)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		ty          Type
		nodes       int
		disk, share string
		contains    []string // nil: valid
	}{
		{NodeMajority, 2, "", "", nil},
		{NodeMajority, 16, "", "", nil},
		{NodeAndDiskMajority, 2, "witness0", "", nil},
		{NodeAndDiskMajority, 2, "/dev/sdb", "", nil},
		{DiskOnly, 3, "q-disk_1.img", "", nil},
		{NodeAndFileShareMajority, 2, "", `\\fs01\witness`, nil},
		{NodeAndFileShareMajority, 2, "", `\\fs01.example.com\witness$\HVCLUSTER`, nil},

		{"quorum", 2, "", "", []string{`"quorum"`, "node_and_file_share_majority"}},
		{NodeMajority, 0, "", "", []string{"nodes", "1 to 16"}},
		{NodeMajority, 17, "", "", []string{"nodes", "17"}},
		{NodeAndDiskMajority, 17, "w", "", []string{"nodes", "17"}},
		{NodeMajority, 2, "w0", "", []string{"witness_disk", `"w0"`, "node_and_disk_majority"}},
		{NodeMajority, 2, "", `\\s\x`, []string{"witness_share", `\\\\s\\x`, "node_and_file_share_majority"}},
		{NodeAndDiskMajority, 2, "", "", []string{"witness_disk", "required", "LUN name"}},
		{DiskOnly, 2, "", "", []string{"witness_disk", "required"}},
		{NodeAndDiskMajority, 2, "w", `\\s\x`, []string{"witness_share", "not allowed"}},
		{NodeAndDiskMajority, 2, "bad name", "", []string{"witness_disk", `"bad name"`, "LUN name"}},
		{NodeAndDiskMajority, 2, "-lead", "", []string{"witness_disk", "LUN name"}},
		{NodeAndDiskMajority, 2, strings.Repeat("a", 65), "", []string{"witness_disk", "LUN name"}},
		{NodeAndDiskMajority, 2, "/dev/../etc/passwd", "", []string{"witness_disk", "block-device path"}},
		{NodeAndFileShareMajority, 2, "", "", []string{"witness_share", "required", `\\server\share`}},
		{NodeAndFileShareMajority, 2, "w", `\\s\x`, []string{"witness_disk", "not allowed"}},
		{NodeAndFileShareMajority, 2, "", `//server/share`, []string{"witness_share", `"//server/share"`, `\\server\share`}},
		{NodeAndFileShareMajority, 2, "", `\\server`, []string{"witness_share"}},
		{NodeAndFileShareMajority, 2, "", `\\server\`, []string{"witness_share"}},
		{NodeAndFileShareMajority, 2, "", `\\\share`, []string{"witness_share"}},
		{NodeAndFileShareMajority, 2, "", `\\server\sh:are`, []string{"witness_share"}},
		{NodeAndFileShareMajority, 2, "", `C:\share`, []string{"witness_share"}},
		{NodeAndFileShareMajority, 2, "", ` \\server\share`, []string{"witness_share"}},
	}
	for _, tc := range cases {
		err := Validate(Config{Type: tc.ty, Nodes: tc.nodes}, tc.disk, tc.share)
		if tc.contains == nil {
			if err != nil {
				t.Errorf("Validate(%s, %d, %q, %q) = %v, want nil", tc.ty, tc.nodes, tc.disk, tc.share, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Validate(%s, %d, %q, %q): want error", tc.ty, tc.nodes, tc.disk, tc.share)
			continue
		}
		for _, s := range tc.contains {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Validate(%s, %d, %q, %q) error %q lacks %q", tc.ty, tc.nodes, tc.disk, tc.share, err, s)
			}
		}
	}
}

// Validate accepts exactly the configurations Compute accepts once the
// witness is derived from the attributes.
func TestValidateAgreesWithCompute(t *testing.T) {
	for _, ty := range Types {
		for n := 0; n <= 17; n++ {
			disk, share := "", ""
			switch ty.WitnessAttribute() {
			case "witness_disk":
				disk = "lun-w"
			case "witness_share":
				share = `\\fs\w`
			}
			verr := Validate(Config{Type: ty, Nodes: n}, disk, share)
			_, cerr := Compute(Config{Type: ty, Nodes: n, Witness: disk != "" || share != ""})
			if (verr == nil) != (cerr == nil) {
				t.Errorf("%s/%d: Validate %v, Compute %v", ty, n, verr, cerr)
			}
		}
	}
}

func TestRisks(t *testing.T) {
	has := func(rs []string, s string) bool {
		for _, r := range rs {
			if strings.Contains(r, s) {
				return true
			}
		}
		return false
	}
	for _, ty := range Types {
		for n := 1; n <= 16; n++ {
			c := Config{ty, n, ty.NeedsWitness()}
			rs := Risks(c)
			twoNode := ty == NodeMajority && n == 2
			evenWaste := ty == NodeMajority && n%2 == 0 && n > 2
			spof := ty == DiskOnly
			oddWitness := (ty == NodeAndDiskMajority || ty == NodeAndFileShareMajority) && n%2 == 1 && n > 1
			if got := has(rs, "tolerates no node failure"); got != twoNode {
				t.Errorf("%+v: two-node warning %v, want %v: %q", c, got, twoNode, rs)
			}
			if got := has(rs, "wastes a vote"); got != evenWaste {
				t.Errorf("%+v: even-count warning %v, want %v: %q", c, got, evenWaste, rs)
			}
			if got := has(rs, "single point of failure"); got != spof {
				t.Errorf("%+v: SPOF warning %v, want %v: %q", c, got, spof, rs)
			}
			if got := has(rs, "adds no failure tolerance"); got != oddWitness {
				t.Errorf("%+v: odd-witness warning %v, want %v: %q", c, got, oddWitness, rs)
			}
			if got := has(rs, "one-node"); got != (n == 1) {
				t.Errorf("%+v: one-node warning %v: %q", c, got, rs)
			}
			if twoNode || evenWaste {
				if !has(rs, "witness") {
					t.Errorf("%+v: warning does not suggest a witness: %q", c, rs)
				}
			}
		}
	}
	if Risks(Config{NodeMajority, 3, false}) != nil {
		t.Error("3-node majority: want no risk")
	}
	if Risks(Config{NodeAndFileShareMajority, 2, true}) != nil {
		t.Error("2 nodes + share: want no risk")
	}
	if Risks(Config{NodeMajority, 0, false}) != nil {
		t.Error("invalid config: want nil")
	}
}

func TestTypeHelpers(t *testing.T) {
	if NodeMajority.NeedsWitness() || !DiskOnly.NeedsWitness() {
		t.Error("NeedsWitness")
	}
	want := map[Type]string{NodeMajority: "", NodeAndDiskMajority: "witness_disk", DiskOnly: "witness_disk", NodeAndFileShareMajority: "witness_share"}
	for ty, a := range want {
		if ty.WitnessAttribute() != a {
			t.Errorf("%s.WitnessAttribute() = %q", ty, ty.WitnessAttribute())
		}
	}
}
