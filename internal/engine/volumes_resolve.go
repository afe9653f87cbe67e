package engine

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// How a volume names its LUN so that every host finds it (issue #18
// item 4): lun (an embedded SAN name, or one absolute path on every
// host), device_id (a /dev/disk/by-id name each host resolves under its
// own /dev/disk/by-id) or device_paths (the path on each node). Exactly
// one is given. ResolveLUN is the one resolution, for the node that
// opens it; nodesSeeLUN is what the control plane can tell from the
// agents' reports without opening anything.

// DefaultByIDDir is where a host's udev names its disks by identity.
const DefaultByIDDir = "/dev/disk/by-id"

// LUNRoots is where a node finds LUNs: its data dir (the embedded SAN)
// and its by-id directory (default DefaultByIDDir).
type LUNRoots struct {
	DataDir string
	ByID    string
}

const lunWays = "exactly one of lun (an embedded SAN LUN name or an absolute device path, the same on every node), " +
	"device_id (a /dev/disk/by-id name, e.g. wwn-0x5000c500a1b2c3d4, that every node resolves on its own host) " +
	"or device_paths (node name → that node's absolute device path)"

// checkLUNNaming: exactly one way of naming the LUN, each well formed.
func checkLUNNaming(s VolumeSpec) error {
	var given []string
	if s.LUN != "" {
		given = append(given, fmt.Sprintf("lun = %q", s.LUN))
	}
	if s.DeviceID != "" {
		given = append(given, fmt.Sprintf("device_id = %q", s.DeviceID))
	}
	if s.DevicePaths != nil {
		given = append(given, fmt.Sprintf("device_paths (%d nodes)", len(s.DevicePaths)))
	}
	switch len(given) {
	case 0:
		return invalid("lun", "", lunWays)
	case 1:
	default:
		attr := "device_id"
		if s.DeviceID == "" {
			attr = "device_paths"
		}
		return &InputError{Attribute: attr, Value: s.DeviceID,
			Detail: fmt.Sprintf("%s name the LUN more than once; give %s", strings.Join(given, " and "), lunWays)}
	}
	if id := s.DeviceID; id != "" {
		if len(id) > 255 || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." || strings.TrimSpace(id) != id {
			return invalid("device_id", id, "a name under /dev/disk/by-id (no '/', at most 255 bytes), e.g. wwn-0x5000c500a1b2c3d4 or scsi-36001405...")
		}
	}
	if s.DevicePaths != nil && len(s.DevicePaths) == 0 {
		return invalid("device_paths", "{}", "one absolute device path per node of the cluster")
	}
	for _, n := range slices.Sorted(maps.Keys(s.DevicePaths)) {
		if p := s.DevicePaths[n]; !filepath.IsAbs(p) {
			return &InputError{Attribute: "device_paths", Value: p,
				Detail: fmt.Sprintf("device_paths[%q] = %q is not an absolute path; allowed: node name → that node's absolute device path", n, p)}
		}
	}
	return nil
}

// checkDevicePathsNodes: device_paths names exactly c's nodes.
func checkDevicePathsNodes(s VolumeSpec, c Cluster) error {
	if s.DevicePaths == nil {
		return nil
	}
	for _, n := range slices.Sorted(maps.Keys(s.DevicePaths)) {
		if !slices.Contains(c.Nodes, n) {
			return &InputError{Attribute: "device_paths", Value: n,
				Detail: fmt.Sprintf("device_paths names %q, which is not a node of cluster %q; allowed keys: its nodes %s", n, c.Name, strings.Join(c.Nodes, ", "))}
		}
	}
	for _, n := range c.Nodes {
		if _, ok := s.DevicePaths[n]; !ok {
			return &InputError{Attribute: "device_paths", Value: n,
				Detail: fmt.Sprintf("device_paths has no path for node %q of cluster %q; every node (%s) needs its path to the LUN", n, c.Name, strings.Join(c.Nodes, ", "))}
		}
	}
	return nil
}

// ResolveLUN is the path at which node finds the LUN s names, on the host
// whose roots r are: nothing is opened.
func ResolveLUN(s VolumeSpec, node string, r LUNRoots) (string, error) {
	switch {
	case s.DeviceID != "":
		if r.ByID == "" {
			r.ByID = DefaultByIDDir
		}
		return filepath.Join(r.ByID, s.DeviceID), nil
	case s.DevicePaths != nil:
		p, ok := s.DevicePaths[node]
		if !ok {
			return "", &InputError{Attribute: "device_paths", Value: node,
				Detail: fmt.Sprintf("device_paths has no path for node %q (it names %s)", node, strings.Join(slices.Sorted(maps.Keys(s.DevicePaths)), ", "))}
		}
		return p, nil
	case !s.Embedded():
		return s.LUN, nil
	case r.DataDir == "":
		return "", &InputError{Attribute: "lun", Value: s.LUN,
			Detail: fmt.Sprintf("%q is an embedded SAN LUN, but this engine has no data_dir; give an absolute block-device path", s.LUN)}
	}
	return filepath.Join(r.DataDir, SANDir, s.LUN+".img"), nil
}

// localLUN is the path of s's LUN for this process, which acts for every
// node of the lab until the node agents do the data plane (issue #18): a
// device_paths entry of the node named like this host, else the first
// node's (by name) whose path exists here, else the first node's.
func (e *Engine) localLUN(s VolumeSpec) (string, error) {
	node := ""
	if s.DevicePaths != nil {
		names := slices.Sorted(maps.Keys(s.DevicePaths))
		node = names[0]
		if _, ok := s.DevicePaths[e.rt.host]; ok {
			node = e.rt.host
		} else {
			for _, n := range names {
				if _, err := os.Stat(s.DevicePaths[n]); err == nil {
					node = n
					break
				}
			}
		}
	}
	return ResolveLUN(s, node, LUNRoots{DataDir: e.dataDir, ByID: e.byID})
}

// lunSeen says whether a host's reported LUNs include the one s names for
// node.
func lunSeen(s VolumeSpec, node string, luns []hostfacts.LUN) bool {
	for _, l := range luns {
		switch {
		case s.DeviceID != "":
			if l.Identity == s.DeviceID || slices.Contains(l.IDs, s.DeviceID) {
				return true
			}
		case s.Embedded():
			if l.Identity == hostfacts.SANIdentity(s.LUN) {
				return true
			}
		default:
			p, _ := ResolveLUN(s, node, LUNRoots{})
			if l.Path == p || filepath.Dir(p) == DefaultByIDDir && slices.Contains(l.IDs, filepath.Base(p)) {
				return true
			}
		}
	}
	return false
}

// lunName is how errors name s's LUN.
func lunName(s VolumeSpec) string {
	switch {
	case s.DeviceID != "":
		return fmt.Sprintf("device_id %q", s.DeviceID)
	case s.DevicePaths != nil:
		return "device_paths"
	}
	return fmt.Sprintf("lun %q", s.LUN)
}

// nodesSeeLUN checks, when the cluster's agents report their LUNs, that
// every node's fresh report lists the LUN s names: a LUN one node cannot
// see would be formatted for a cluster that cannot use it. Without any
// report of LUNs (the embedded lab, agents without reports) nothing is
// judged. An embedded SAN LUN not created yet is the engine's to create.
func (e *Engine) nodesSeeLUN(ctx context.Context, s VolumeSpec, c Cluster) error {
	reports, bad, err := e.readReports(ctx)
	if err != nil {
		return err
	}
	listing := false
	for _, n := range c.Nodes {
		if r, ok := reports[n]; ok && r.LUNs != nil {
			listing = true
		}
	}
	if !listing {
		return nil
	}
	if s.Embedded() {
		if _, err := os.Stat(filepath.Join(e.dataDir, SANDir, s.LUN+".img")); err != nil {
			return nil
		}
	}
	attr, val := "lun", s.LUN
	switch {
	case s.DeviceID != "":
		attr, val = "device_id", s.DeviceID
	case s.DevicePaths != nil:
		attr = "device_paths"
	}
	for _, n := range c.Nodes {
		r, ok := reports[n]
		var why string
		switch {
		case !ok && bad[n] != "":
			why = fmt.Sprintf("node %q of cluster %q has no usable report (%s), so whether it sees the LUN is unknown", n, c.Name, bad[n])
		case !ok:
			why = fmt.Sprintf("node %q of cluster %q has no fresh report (its agent, `kayoctl agent --node %s`, is not running or has not reported in %s), so whether it sees the LUN is unknown", n, c.Name, n, ReportMaxAge)
		case r.LUNs == nil:
			why = fmt.Sprintf("node %q of cluster %q reports no LUN list (its agent is older than LUN reporting)", n, c.Name)
		case !lunSeen(s, n, r.LUNs):
			p, _ := ResolveLUN(s, n, LUNRoots{DataDir: e.dataDir})
			why = fmt.Sprintf("node %q of cluster %q does not see %s (its agent's report, %s, lists %d LUNs and not %s)",
				n, c.Name, lunName(s), r.ReportedAt.Format("2006-01-02T15:04:05Z07:00"), len(r.LUNs), p)
		default:
			continue
		}
		if attr == "device_paths" {
			val = s.DevicePaths[n]
		}
		return &InputError{Attribute: attr, Value: val,
			Detail: why + "; every node must see the volume's LUN (see kayo_host.reported.luns); nothing was formatted"}
	}
	return nil
}

// checkLUNForCluster: what a new volume's LUN naming must satisfy on c.
func (e *Engine) checkLUNForCluster(ctx context.Context, s VolumeSpec, c Cluster) error {
	if err := checkDevicePathsNodes(s, c); err != nil {
		return err
	}
	return e.nodesSeeLUN(ctx, s, c)
}

// NodeLUNPaths returns the paths at which node finds the LUNs of its
// cluster's volumes named by path or device_paths (an agent reports them
// with the block devices it finds; embedded SAN images are listed from the
// data dir, by-id names from /dev/disk/by-id).
func (e *Engine) NodeLUNPaths(ctx context.Context, node string) ([]string, error) {
	h, err := e.GetHost(ctx, node)
	if err != nil || h.Cluster == "" {
		return nil, err
	}
	vs, err := e.ListVolumes(ctx, h.Cluster)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vs {
		if v.Embedded() || v.DeviceID != "" {
			continue
		}
		if p, err := ResolveLUN(v.VolumeSpec, node, LUNRoots{}); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// lunRef is how an error about s's LUN, found at dev here, names the
// attribute at fault, its value and the LUN.
func lunRef(s VolumeSpec, dev string) (attr, value, ref string) {
	switch {
	case s.DeviceID != "":
		return "device_id", s.DeviceID, fmt.Sprintf("%q (%s on this host)", s.DeviceID, dev)
	case s.DevicePaths != nil:
		return "device_paths", dev, fmt.Sprintf("%q", dev)
	}
	return "lun", s.LUN, fmt.Sprintf("%q", s.LUN)
}
