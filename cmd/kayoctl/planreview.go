package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/planreview"
)

// exitDenied: `plan review --deny` found a denied change.
const exitDenied = 3

// deniedError is a plan holding a change --deny names; the review itself
// has been printed.
type deniedError struct{ categories []string }

func (e deniedError) Error() string {
	return "the plan has denied changes: " + strings.Join(e.categories, ", ")
}

func (c *cli) plan(args []string) error {
	if len(args) == 0 || args[0] != "review" {
		return usagef("plan: want `plan review PLAN.json`")
	}
	fs := c.newFlagSet("plan review")
	format := fs.String("format", "table", "output: table, markdown or json")
	deny := fs.String("deny", "", "comma-separated categories that fail the review with exit code 3: "+strings.Join(planreview.Categories, ", "))
	noDB := fs.Bool("no-database", false, "judge from the plan alone, without the cluster database")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("plan review: want exactly one plan file (the output of `terraform show -json PLANFILE`, or - for stdin), got %d arguments", fs.NArg())
	}
	if !validFormat(*format) {
		return usagef("plan review: --format %q: allowed are %s", *format, strings.Join(planreview.Formats, ", "))
	}
	denied, err := planreview.ParseDeny(*deny)
	if err != nil {
		return usagef("plan review: %v", err)
	}
	name := fs.Arg(0)
	var data []byte
	if name == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return fmt.Errorf("plan review: %w", err)
	}
	p, err := planreview.Read(data)
	if err != nil {
		return fmt.Errorf("plan review: %s: %w", name, err)
	}
	ctx := context.Background()
	var src planreview.Source
	dbNote := ""
	if !*noDB {
		e, why, err := c.openIfPresent()
		switch {
		case err != nil:
			dbNote = "not reachable (" + err.Error() + ")"
		case e == nil:
			dbNote = "not reachable (" + why + ")"
		default:
			defer closeEngine(e)
			src = engineSource{e}
		}
	}
	rep := planreview.Review(ctx, p, src)
	if dbNote != "" {
		rep.Database = dbNote
	}
	gated := rep.Gate(denied)
	var b bytes.Buffer
	if err := rep.Write(&b, *format); err != nil {
		return err
	}
	if err := c.emit(&b); err != nil {
		return err
	}
	if gated {
		var cats []string
		for _, d := range rep.Denied {
			cats = append(cats, d.Category)
		}
		return deniedError{cats}
	}
	return nil
}

func validFormat(f string) bool {
	for _, x := range planreview.Formats {
		if f == x {
			return true
		}
	}
	return false
}

// openIfPresent opens the cluster database only where one exists: etcd
// when configured, else an existing data_dir/cluster.db (a review never
// creates a database). Without one it returns a nil engine and why.
func (c *cli) openIfPresent() (*engine.Engine, string, error) {
	etcd := c.etcdEndpoints != "" || c.getenv(store.EnvEtcdEndpoints) != ""
	if !etcd {
		dir := c.dataDir
		if dir == "" {
			dir = c.getenv("KAYO_DATA_DIR")
		}
		if dir == "" {
			dir = engine.DefaultDataDir
		}
		if _, err := os.Stat(filepath.Join(dir, engine.DatabaseFile)); err != nil {
			return nil, fmt.Sprintf("no %s in %s; set --data-dir, KAYO_DATA_DIR or --etcd-endpoints", engine.DatabaseFile, dir), nil
		}
	}
	e, err := c.open()
	return e, "", err
}

// engineSource answers planreview's questions with the engine's read-only
// plan calls, the ones `terraform plan` makes through the provider.
type engineSource struct{ e *engine.Engine }

// vmAfter is a kayo_virtual_machine's planned values as `show -json`
// writes them.
type vmAfter struct {
	ClusterID      string `json:"cluster_id"`
	VolumeID       string `json:"volume_id"`
	Name           string `json:"name"`
	MemoryMB       int64  `json:"memory_mb"`
	ProcessorCount int    `json:"processor_count"`
	VHD            *struct {
		SizeGiB int64  `json:"size_gib"`
		Type    string `json:"type"`
	} `json:"vhd"`
	NetworkAdapters []struct {
		Switch string `json:"switch"`
	} `json:"network_adapters"`
	OwnerNode          *string  `json:"owner_node"`
	PreferredOwners    []string `json:"preferred_owners"`
	PossibleOwners     []string `json:"possible_owners"`
	AntiAffinityClass  *string  `json:"anti_affinity_class"`
	AntiAffinityMode   string   `json:"anti_affinity_mode"`
	Migration          string   `json:"migration"`
	State              string   `json:"state"`
	AllowRestart       bool     `json:"allow_restart"`
	MaxFailures        *int     `json:"max_failures"`
	FailurePeriodHours int      `json:"failure_period_hours"`
	Failback           *struct {
		Mode            string `json:"mode"`
		WindowStartHour *int   `json:"window_start_hour"`
		WindowEndHour   *int   `json:"window_end_hour"`
	} `json:"failback"`
}

func recode(in map[string]any, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func (s engineSource) PlanVM(ctx context.Context, after map[string]any) (planreview.VMPlan, error) {
	var a vmAfter
	if err := recode(after, &a); err != nil {
		return planreview.VMPlan{}, fmt.Errorf("reading the planned VM: %w", err)
	}
	spec := engine.VMSpec{Cluster: a.ClusterID, Volume: a.VolumeID, Name: a.Name, MemoryMB: a.MemoryMB,
		ProcessorCount: a.ProcessorCount, PreferredOwners: a.PreferredOwners, PossibleOwners: a.PossibleOwners,
		AntiAffinityMode: a.AntiAffinityMode, Migration: a.Migration, State: a.State, AllowRestart: a.AllowRestart,
		FailurePeriodHours: a.FailurePeriodHours, MaxFailures: 1}
	if a.OwnerNode != nil {
		spec.OwnerNode = *a.OwnerNode
	}
	if a.AntiAffinityClass != nil {
		spec.AntiAffinityClass = *a.AntiAffinityClass
	}
	if a.MaxFailures != nil {
		spec.MaxFailures = *a.MaxFailures
	}
	if a.VHD != nil {
		spec.VHD = engine.VHDSpec{SizeGiB: a.VHD.SizeGiB, Type: a.VHD.Type}
	}
	for _, n := range a.NetworkAdapters {
		spec.Adapters = append(spec.Adapters, engine.VMAdapter{Switch: n.Switch})
	}
	spec.Failback.Mode = engine.FailbackPrevent
	if a.Failback != nil {
		spec.Failback.Mode = a.Failback.Mode
		if a.Failback.WindowStartHour != nil {
			spec.Failback.WindowStartHour = *a.Failback.WindowStartHour
		}
		if a.Failback.WindowEndHour != nil {
			spec.Failback.WindowEndHour = *a.Failback.WindowEndHour
		}
	}
	p, err := s.e.PlanVM(ctx, spec)
	if err != nil {
		return planreview.VMPlan{}, err
	}
	if !p.Judged {
		return planreview.VMPlan{}, errors.New("its cluster is not in the database yet")
	}
	return planreview.VMPlan{Move: p.Move, From: p.From, To: p.To, Type: p.Type, Why: p.Why, Pinned: p.Pinned}, nil
}

func moves(ms []engine.PlannedMove) []planreview.Move {
	out := make([]planreview.Move, len(ms))
	for i, m := range ms {
		out[i] = planreview.Move{VM: m.VM, From: m.From, To: m.To, Type: m.Type, Why: m.Why}
	}
	return out
}

func (s engineSource) PlanDrain(ctx context.Context, cluster string, hosts []string, reason string) ([]planreview.Move, error) {
	ms, err := s.e.PlanDrain(ctx, cluster, hosts, reason)
	return moves(ms), err
}

func (s engineSource) PlanNodeRemoval(ctx context.Context, after map[string]any) ([]planreview.Move, error) {
	var spec engine.ClusterSpec
	if err := recode(after, &spec); err != nil {
		return nil, fmt.Errorf("reading the planned cluster: %w", err)
	}
	ms, err := s.e.PlanNodeRemoval(ctx, spec)
	return moves(ms), err
}

func (s engineSource) Quorum(ctx context.Context, cluster string) (planreview.QuorumConfig, error) {
	q, err := s.e.GetQuorum(ctx, cluster)
	if err != nil {
		return planreview.QuorumConfig{}, err
	}
	w := q.WitnessDisk
	if q.WitnessShare != "" {
		w = q.WitnessShare
	}
	return planreview.QuorumConfig{Type: q.Type, Witness: w}, nil
}
