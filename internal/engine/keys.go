package engine

import "fmt"

// The key schema of the cluster database: every key the engine and the
// node agents read or write, in one place; a key joins its parts with
// "/". docs/ARCHITECTURE.md summarises the schema.

// Hosts, clusters and their guard records.
const (
	// hosts/<host>: a registered host (Host).
	hostsPrefix = "hosts/"
	// clusters/<cluster>: a cluster's spec and validation report.
	clustersPrefix = "clusters/"
	// quorum/<cluster>: a kayo_quorum's configuration; absent means the
	// implicit node_majority.
	quorumPrefix = "quorum/"
	// liveness/<cluster>: the cluster's down nodes, written with every
	// change of a node's Down flag so a quorum check compares one key.
	livenessPrefix = "liveness/"
	// nodes/<host>/heartbeat and nodes/<host>/alive: a node agent's
	// heartbeat and its lease-bound liveness key.
	nodesPrefix = "nodes/"
	// events/<time>-<seq>-<rand>: the append-only history (Event).
	eventsPrefix = "events/"
)

func hostKey(name string) string        { return hostsPrefix + name }
func clusterKey(name string) string     { return clustersPrefix + name }
func quorumKey(cluster string) string   { return quorumPrefix + cluster }
func livenessKey(cluster string) string { return livenessPrefix + cluster }
func heartbeatKey(host string) string   { return nodesPrefix + host + "/heartbeat" }
func aliveKey(host string) string       { return nodesPrefix + host + "/alive" }

// What node agents report: host-reports/<host> (a host's machine,
// hostfacts) and probes/<cluster>/<node> (a node's latest round of
// network probes, netprobe).
const (
	hostReportsPrefix = "host-reports/"
	probesPrefix      = "probes/"
)

func hostReportKey(node string) string         { return hostReportsPrefix + node }
func probeKey(cluster, node string) string     { return probesPrefix + cluster + "/" + node }
func probeClusterPrefix(cluster string) string { return probesPrefix + cluster + "/" }

// probe-keys/<cluster>: the key that authenticates the agents' network
// probes of one cluster (netprobe), made once.
func probeSecretKey(cluster string) string { return "probe-keys/" + cluster }

// storage-probes/<cluster>/<node>: a node agent's latest round of storage
// probes of its cluster's volumes (storageprobe, storage_probes.go).
const storageProbesPrefix = "storage-probes/"

func storageProbeKey(cluster, node string) string { return storageProbesPrefix + cluster + "/" + node }
func storageProbeClusterPrefix(cluster string) string {
	return storageProbesPrefix + cluster + "/"
}

// The cluster agents' leader lease (leader.go; the agent side is internal/nodeagent/lease.go).
const (
	// agents/<cluster>/leader: the leader's record with its term (the
	// fencing token); agents/<cluster>/lock: the store-lease lock whose
	// revision fences the leader's commits.
	leasePrefix = "agents/"
)

func leaseKey(cluster string) string { return leasePrefix + cluster + "/leader" }
func lockKey(cluster string) string  { return leasePrefix + cluster + "/lock" }

// Shared volumes. A volume record is keyed by its UUID; a letter record
// per cluster makes drive letters unique; an intent record marks a
// creation in progress so a crashed one is resumed, not repeated.
const (
	// volumes/<uuid>: a volume (Volume).
	volumesPrefix = "volumes/"
	// volume-letters/<cluster>/<letter>: the volume holding a letter.
	volumeLettersPrefix = "volume-letters/"
	// volume-intents/<cluster>/<letter>: a creation in progress.
	volumeIntentsPrefix = "volume-intents/"
	// volume-reports/<uuid>/<node>: what that node last saw of the
	// volume's LUN (VolumeReport, volume_reports.go).
	volumeReportsPrefix = "volume-reports/"
	// volume-files/<uuid>/<path>: a file put on the volume from a local
	// file (VolumeFile, volume_files.go), path as on the volume
	// (templates/base.vhd).
	volumeFilesPrefix = "volume-files/"
	// volume-file-chunks/<uuid>/<stream>/<seq>: a put's chunks in flight
	// (volume_file_put.go; an all-zero chunk is an empty record, a hole).
	volumeFileChunksPrefix = "volume-file-chunks/"
)

func volumeFileKey(id, volPath string) string { return volumeFilesPrefix + id + "/" + volPath }

func putChunkKey(id, stream string, seq int64) string {
	return fmt.Sprintf("%s%s/%s/%08d", volumeFileChunksPrefix, id, stream, seq)
}

func volumeReportKey(id, node string) string { return volumeReportsPrefix + id + "/" + node }

func volumeKey(id string) string { return volumesPrefix + id }
func volumeLetterKey(cluster, letter string) string {
	return volumeLettersPrefix + cluster + "/" + letter
}
func volumeIntentKey(cluster, letter string) string {
	return volumeIntentsPrefix + cluster + "/" + letter
}

// Virtual machines (vms.go).
const (
	// vms/<cluster>/<vm>: the VM's spec, owner, fencing token, status and
	// pending operation (VM).
	vmsPrefix = "vms/"
	// vm-nodes/<cluster>/<node>: the VMs whose memory the node holds;
	// every placement commits its reservation there.
	vmNodesPrefix = "vm-nodes/"
	// vm-miglocks/<cluster>/<from>/<to>: one live migration at a time
	// between two nodes.
	vmMigLockPrefix = "vm-miglocks/"
	// hv/<cluster>/...: the embedded simulator's records (its keys are
	// the hypervisor package's: <cluster>/node/<node>/<vm> and
	// <cluster>/fence/<vm>).
	hvPrefix = "hv/"
	// failback/<cluster>/<vm>: where a VM failed over from, for its
	// failback.
	failbackPrefix = "failback/"
)

func vmKey(cluster, name string) string           { return vmsPrefix + cluster + "/" + name }
func vmNodeKey(cluster, node string) string       { return vmNodesPrefix + cluster + "/" + node }
func vmNodeClusterPrefix(cluster string) string   { return vmNodesPrefix + cluster + "/" }
func failbackKey(cluster, vm string) string       { return failbackPrefix + cluster + "/" + vm }
func failbackClusterPrefix(cluster string) string { return failbackPrefix + cluster + "/" }
func vmMigLockKey(cluster, from, to string) string {
	return vmMigLockPrefix + cluster + "/" + from + "/" + to
}

// The qemu driver's request/result protocol (qemu_driver.go): its keys,
// qemu/... and qemu-agents/..., are internal/engine/hypervisor/qemu/protocol.go's,
// shared with the runner.

// Node work: the request/result protocol that carries a node's data-plane
// work (its VMs' files, ...) to the executor of that node
// (nodework.go, executor_work.go).
const (
	// node-work/<node>/req/<object>: the request to node's executor, one
	// at a time per object (vm/<cluster>/<vm>); node-work/<node>/res/<object>:
	// its progress and result (workResult).
	nodeWorkPrefix = "node-work/"
	// node-work-agents/<node>: the node agent's work executor heartbeat
	// (WorkAgentBeat); absent or stale: no agent serves the node.
	nodeWorkAgentsPrefix = "node-work-agents/"
)

func nodeWorkReqPrefix(node string) string      { return nodeWorkPrefix + node + "/req/" }
func nodeWorkReqKey(node, object string) string { return nodeWorkReqPrefix(node) + object }
func nodeWorkResKey(node, object string) string { return nodeWorkPrefix + node + "/res/" + object }
func nodeWorkAgentKey(node string) string       { return nodeWorkAgentsPrefix + node }
func vmWorkObject(cluster, vm string) string    { return "vm/" + cluster + "/" + vm }
func volumeWorkObject(id string) string         { return "volume/" + id }

// volumeSlotsWorkObject is a change of the nodes' slots on a volume, and
// volumeImageWorkObject a deleted volume's LUN image (volume_slots.go).
func volumeSlotsWorkObject(id string) string { return "volume-slots/" + id }
func volumeImageWorkObject(id string) string { return "volume-image/" + id }

// volumeFileWorkObject is a put file's put and removal
// (volume_file_put.go, volume_file_work.go).
func volumeFileWorkObject(id, vp string) string { return "volume-file/" + id + "/" + vp }

// volumeReportWorkObject is a request for the lab's reports of a volume
// (volume_report_work.go).
func volumeReportWorkObject(id string) string { return "volume-report/" + id }

// volumeMountWorkObject is a node's long-lived mount of a volume.
func volumeMountWorkObject(id string) string { return "volume-mount/" + id }

// volumeNewWorkObject is a volume's creation, before it has an ID.
func volumeNewWorkObject(cluster, letter string) string {
	return "volume-new/" + cluster + "/" + letter
}

// Virtual switches (switches.go).
const (
	// switches/<cluster>/<name>: a kayo_virtual_switch (Switch); a VM
	// commit naming the switch rewrites it (its Users count), so a
	// deletion that read the VMs before cannot commit.
	switchesPrefix = "switches/"
)

func switchKey(cluster, name string) string     { return switchesPrefix + cluster + "/" + name }
func switchClusterPrefix(cluster string) string { return switchesPrefix + cluster + "/" }
