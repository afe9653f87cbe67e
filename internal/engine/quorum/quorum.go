// Package quorum is the vote arithmetic of a Windows Server 2008 failover
// cluster: static votes (one per node, one for a witness disk or file share),
// no dynamic quorum and no vote weights. It is pure: no I/O, no clock.
//
// Definitions used throughout:
//
//   - TotalVotes: every vote the configuration has (nodes + witness).
//   - VotesNeeded: the votes a partition must hold to run the cluster
//     (a strict majority of TotalVotes; 1 for disk_only).
//   - FailuresTolerated: how many NODES may fail while the witness (if any)
//     survives and the cluster keeps quorum. A witness failure is not
//     counted here; for the majority types losing the witness costs exactly
//     one vote, and for disk_only it is fatal (see Compute).
package quorum

import (
	"fmt"
	"strings"
)

// Type is the quorum configuration of a cluster, as kayo_quorum.type.
type Type string

// The four Windows Server 2008 quorum types.
const (
	NodeMajority             Type = "node_majority"
	NodeAndDiskMajority      Type = "node_and_disk_majority"
	NodeAndFileShareMajority Type = "node_and_file_share_majority"
	DiskOnly                 Type = "disk_only"
)

// MinNodes and MaxNodes bound the node count of a cluster.
const (
	MinNodes = 1
	MaxNodes = 16
)

// Types lists every valid Type in documentation order.
var Types = []Type{NodeMajority, NodeAndDiskMajority, NodeAndFileShareMajority, DiskOnly}

func allowedTypes() string {
	s := make([]string, len(Types))
	for i, t := range Types {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// ParseType parses a kayo_quorum.type value. The error names the value and
// lists the allowed ones.
func ParseType(s string) (Type, error) {
	for _, t := range Types {
		if s == string(t) {
			return t, nil
		}
	}
	return "", fmt.Errorf("type: invalid quorum type %q: allowed values are %s", s, allowedTypes())
}

// Valid reports whether t is one of the four types.
func (t Type) Valid() bool {
	_, err := ParseType(string(t))
	return err == nil
}

// NeedsWitness reports whether the type requires a witness.
func (t Type) NeedsWitness() bool { return t != NodeMajority }

// WitnessAttribute is the kayo_quorum attribute holding the witness the type
// needs: "witness_disk", "witness_share", or "" for node_majority.
func (t Type) WitnessAttribute() string {
	switch t {
	case NodeAndDiskMajority, DiskOnly:
		return "witness_disk"
	case NodeAndFileShareMajority:
		return "witness_share"
	}
	return ""
}

// Config is a quorum configuration: its type, the number of cluster nodes and
// whether a witness (disk or share, per the type) is configured.
type Config struct {
	Type    Type
	Nodes   int
	Witness bool
}

// Figures are the computed kayo_quorum attributes.
type Figures struct {
	TotalVotes        int
	VotesNeeded       int
	FailuresTolerated int
}

// check validates the Config itself (type, node count, witness presence).
func (c Config) check() error {
	if !c.Type.Valid() {
		_, err := ParseType(string(c.Type))
		return err
	}
	if c.Nodes < MinNodes || c.Nodes > MaxNodes {
		return fmt.Errorf("nodes: a cluster has %d to %d nodes, got %d", MinNodes, MaxNodes, c.Nodes)
	}
	if c.Type.NeedsWitness() && !c.Witness {
		return fmt.Errorf("%s: quorum type %q needs a witness; set %s", c.Type.WitnessAttribute(), c.Type, c.Type.WitnessAttribute())
	}
	if !c.Type.NeedsWitness() && c.Witness {
		return fmt.Errorf("witness: quorum type %q takes no witness; use %q or %q to add one", c.Type, NodeAndDiskMajority, NodeAndFileShareMajority)
	}
	return nil
}

// Compute returns the vote figures of c, or an error for an invalid
// combination (unknown type, node count outside 1..16, a witness missing for
// a type that needs one, or a witness given to node_majority).
//
//   - node_majority: N votes, floor(N/2)+1 needed, N-needed node failures
//     tolerated (2→0, 3→1, 4→1, 5→2, 16→7).
//   - node_and_disk_majority / node_and_file_share_majority: N+1 votes (the
//     witness adds one), floor((N+1)/2)+1 needed, node failures tolerated
//     while the witness survives = (N+1)-needed (2 nodes + witness → 1).
//   - disk_only: the disk is the only vote: 1 total, 1 needed. Any node
//     that reaches the disk runs the cluster, so N-1 node failures are
//     tolerated; a disk failure is never tolerated (single point of failure).
func Compute(c Config) (Figures, error) {
	if err := c.check(); err != nil {
		return Figures{}, err
	}
	if c.Type == DiskOnly {
		return Figures{TotalVotes: 1, VotesNeeded: 1, FailuresTolerated: c.Nodes - 1}, nil
	}
	total := c.Nodes
	if c.Witness {
		total++
	}
	needed := total/2 + 1
	return Figures{TotalVotes: total, VotesNeeded: needed, FailuresTolerated: total - needed}, nil
}

// HasQuorum reports whether a cluster configured as c keeps quorum with
// nodesUp nodes communicating and the witness up or not (witnessUp is
// ignored for node_majority). An invalid Config, or nodesUp outside
// 0..c.Nodes, has no quorum. disk_only has quorum when the disk is up and at
// least one node runs.
func HasQuorum(c Config, nodesUp int, witnessUp bool) bool {
	f, err := Compute(c)
	if err != nil || nodesUp < 0 || nodesUp > c.Nodes {
		return false
	}
	if c.Type == DiskOnly {
		return witnessUp && nodesUp >= 1
	}
	votes := nodesUp
	if c.Witness && witnessUp {
		votes++
	}
	return votes >= f.VotesNeeded
}

// Validate checks a kayo_quorum configuration: the type and node count, and
// that exactly the witness the type needs is given — witness_disk (a LUN
// name or an absolute block-device path) for node_and_disk_majority and
// disk_only, witness_share (a UNC path \\server\share) for
// node_and_file_share_majority, neither for node_majority. The witness comes
// from the two strings; c.Witness is ignored. Errors start with the
// attribute name and say what is allowed.
func Validate(c Config, witnessDisk, witnessShare string) error {
	if !c.Type.Valid() {
		_, err := ParseType(string(c.Type))
		return err
	}
	c.Witness = c.Type.NeedsWitness()
	switch c.Type {
	case NodeMajority:
		if witnessDisk != "" {
			return fmt.Errorf("witness_disk: %q is not allowed with quorum type %q (it has no witness); remove it, or use %q or %q", witnessDisk, c.Type, NodeAndDiskMajority, DiskOnly)
		}
		if witnessShare != "" {
			return fmt.Errorf("witness_share: %q is not allowed with quorum type %q (it has no witness); remove it, or use %q", witnessShare, c.Type, NodeAndFileShareMajority)
		}
	case NodeAndDiskMajority, DiskOnly:
		if witnessShare != "" {
			return fmt.Errorf("witness_share: %q is not allowed with quorum type %q, which uses witness_disk; remove it, or use %q", witnessShare, c.Type, NodeAndFileShareMajority)
		}
		if witnessDisk == "" {
			return fmt.Errorf("witness_disk: required with quorum type %q: a LUN name (letters, digits, '.', '_', '-'; up to 64 characters) or an absolute block-device path", c.Type)
		}
		if err := checkDisk(witnessDisk); err != nil {
			return err
		}
	case NodeAndFileShareMajority:
		if witnessDisk != "" {
			return fmt.Errorf("witness_disk: %q is not allowed with quorum type %q, which uses witness_share; remove it, or use %q", witnessDisk, c.Type, NodeAndDiskMajority)
		}
		if witnessShare == "" {
			return fmt.Errorf(`witness_share: required with quorum type %q: a UNC path such as \\server\share`, c.Type)
		}
		if err := checkShare(witnessShare); err != nil {
			return err
		}
	}
	return c.check()
}

func checkDisk(d string) error {
	if strings.HasPrefix(d, "/") {
		if strings.ContainsAny(d, "\x00\n\r\t") || d == "/" || strings.Contains(d, "/../") || strings.HasSuffix(d, "/..") {
			return fmt.Errorf("witness_disk: %q is not a valid block-device path: allowed is an absolute path such as /dev/sdb, without '..'", d)
		}
		return nil
	}
	ok := len(d) <= 64
	for i, r := range d {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || (r != '.' && r != '_' && r != '-')) {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("witness_disk: %q is not a valid LUN name: allowed are 1-64 letters, digits, '.', '_' and '-', starting with a letter or digit, or an absolute block-device path", d)
	}
	return nil
}

func checkShare(s string) error {
	bad := func() error {
		return fmt.Errorf(`witness_share: %q is not a valid file share: allowed is a UNC path \\server\share (optionally \\server\share\folder), without the characters <>:"/|?* or spaces at either end`, s)
	}
	if !strings.HasPrefix(s, `\\`) || strings.TrimSpace(s) != s {
		return bad()
	}
	parts := strings.Split(s[2:], `\`)
	if len(parts) < 2 {
		return bad()
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, "<>:\"/|?*\x00\n\r\t") {
			return bad()
		}
	}
	return nil
}

// Risks returns plan-time warnings for a valid configuration (nil if the
// configuration is invalid or carries no particular risk). Each warning is
// one sentence fit for a Terraform diagnostic.
func Risks(c Config) []string {
	f, err := Compute(c)
	if err != nil {
		return nil
	}
	var out []string
	if c.Nodes == 1 {
		out = append(out, "a one-node cluster cannot fail over: its VMs stop when the node fails; add nodes for high availability")
	}
	switch c.Type {
	case NodeMajority:
		switch {
		case c.Nodes == 2:
			out = append(out, fmt.Sprintf("a two-node cluster with %q tolerates no node failure: losing either node stops every VM; add a witness (%q or %q) or a third node", NodeMajority, NodeAndDiskMajority, NodeAndFileShareMajority))
		case c.Nodes%2 == 0:
			out = append(out, fmt.Sprintf("%d nodes with %q: an even node count wastes a vote (%d nodes tolerate %d failures, like %d); add a witness (%q or %q) to tolerate %d", c.Nodes, NodeMajority, c.Nodes, f.FailuresTolerated, c.Nodes-1, NodeAndDiskMajority, NodeAndFileShareMajority, f.FailuresTolerated+1))
		}
	case NodeAndDiskMajority, NodeAndFileShareMajority:
		if c.Nodes%2 == 1 && c.Nodes > 1 {
			out = append(out, fmt.Sprintf("%d nodes with a witness make an even vote total: the witness adds no failure tolerance (%d, as without it) and its loss costs a vote; %q is recommended for an odd node count", c.Nodes, f.FailuresTolerated, NodeMajority))
		}
	case DiskOnly:
		out = append(out, fmt.Sprintf("%q makes the witness disk a single point of failure: if the disk fails the whole cluster stops, however many nodes are up; prefer %q", DiskOnly, NodeAndDiskMajority))
	}
	return out
}
