package orphans

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrNotState: a file given as a state is not one.
var ErrNotState = errors.New("not a Terraform/OpenTofu state")

// Instance is one resource instance a state holds, or one a plan creates.
type Instance struct {
	// Address is the instance's full address, e.g.
	// module.lab.kayo_virtual_machine.vm["WEB01"].
	Address string
	// Module is the address of its module ("" for the root module).
	Module string
	// Type is the resource type, e.g. kayo_virtual_machine; Name the
	// resource's name in the configuration, e.g. vm.
	Type, Name string
	// Key is the instance key: a string (for_each), a float64 (count) or
	// nil.
	Key any
	// Values are its attributes (in a plan: the known planned values).
	Values map[string]any
}

// ID is the instance's id attribute, "" when unset.
func (i Instance) ID() string { return str(i.Values["id"]) }

// State is what one file tells: the kayo resource instances a state holds
// and, from a saved plan, those the plan would create.
type State struct {
	// File is the path the state was read from.
	File string
	// Held are the managed kayo_* instances of the state.
	Held []Instance
	// Creates are the kayo_* instances a plan would create (plans only).
	Creates []Instance
}

// ReadStateFile reads a state file (terraform.tfstate, format version 4,
// as Terraform ≥ 0.12 and OpenTofu write it).
func ReadStateFile(path string) (*State, error) {
	b, err := readFile(path, "a state file (terraform.tfstate)")
	if err != nil {
		return nil, err
	}
	return ParseStateFile(path, b)
}

// ReadShowJSON reads the output of `terraform show -json` (or `tofu show
// -json`): of the state, or of a saved plan, whose prior state is what
// is held and whose creations give the addresses of orphans.
func ReadShowJSON(path string) (*State, error) {
	b, err := readFile(path, "the output of `terraform show -json`")
	if err != nil {
		return nil, err
	}
	return ParseShowJSON(path, b)
}

func readFile(path, want string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: no such file; want %s", path, want)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// stateV4 is the part of a version 4 state file orphans reads.
type stateV4 struct {
	Version   *int `json:"version"`
	Resources []struct {
		Module    string `json:"module"`
		Mode      string `json:"mode"`
		Type      string `json:"type"`
		Name      string `json:"name"`
		Instances []struct {
			IndexKey   any            `json:"index_key"`
			Attributes map[string]any `json:"attributes"`
		} `json:"instances"`
	} `json:"resources"`
	FormatVersion string `json:"format_version"`
}

// ParseStateFile parses b, the content of the state file path. An empty
// file is an empty state, as Terraform reads it: Terraform truncates
// terraform.tfstate before rewriting it in place, so a CLI killed in
// between leaves one.
func ParseStateFile(path string, b []byte) (*State, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return &State{File: path}, nil
	}
	var doc stateV4
	if err := decodeObject(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w: %v; want the JSON of a state file (terraform.tfstate)", path, ErrNotState, err)
	}
	switch {
	case doc.Version == nil && doc.FormatVersion != "":
		return nil, fmt.Errorf("%s: %w: this is `terraform show -json` output (format_version %s); pass it with --state-json",
			path, ErrNotState, doc.FormatVersion)
	case doc.Version == nil:
		return nil, fmt.Errorf("%s: %w: it has no \"version\"; want a state file (terraform.tfstate, version 4)", path, ErrNotState)
	case *doc.Version != 4:
		return nil, fmt.Errorf("%s: %w: state version %d; only version 4 (Terraform ≥ 0.12, OpenTofu) is read", path, ErrNotState, *doc.Version)
	}
	s := &State{File: path}
	for _, r := range doc.Resources {
		if r.Mode != "managed" || !IsKayoType(r.Type) {
			continue
		}
		for _, in := range r.Instances {
			s.Held = append(s.Held, Instance{Address: address(r.Module, r.Type, r.Name, in.IndexKey), Module: r.Module,
				Type: r.Type, Name: r.Name, Key: in.IndexKey, Values: in.Attributes})
		}
	}
	return s, nil
}

// showResource is one resource instance of show -json's values.
type showResource struct {
	Address string         `json:"address"`
	Mode    string         `json:"mode"`
	Type    string         `json:"type"`
	Name    string         `json:"name"`
	Index   any            `json:"index"`
	Values  map[string]any `json:"values"`
}

type showModule struct {
	Address      string         `json:"address"`
	Resources    []showResource `json:"resources"`
	ChildModules []showModule   `json:"child_modules"`
}

type showValues struct {
	RootModule showModule `json:"root_module"`
}

type showDoc struct {
	FormatVersion string      `json:"format_version"`
	Version       *int        `json:"version"`
	Values        *showValues `json:"values"`
	PriorState    *struct {
		Values *showValues `json:"values"`
	} `json:"prior_state"`
	PlannedValues   json.RawMessage `json:"planned_values"`
	ResourceChanges []struct {
		Address       string `json:"address"`
		ModuleAddress string `json:"module_address"`
		Mode          string `json:"mode"`
		Type          string `json:"type"`
		Name          string `json:"name"`
		Index         any    `json:"index"`
		Change        struct {
			Actions []string       `json:"actions"`
			After   map[string]any `json:"after"`
		} `json:"change"`
	} `json:"resource_changes"`
}

// ParseShowJSON parses b, the show -json output in file path.
func ParseShowJSON(path string, b []byte) (*State, error) {
	var doc showDoc
	if err := decodeObject(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w: %v; want the output of `terraform show -json`", path, ErrNotState, err)
	}
	switch {
	case doc.FormatVersion == "" && doc.Version != nil:
		return nil, fmt.Errorf("%s: %w: this is a state file (version %d), not `terraform show -json` output; pass it with --state",
			path, ErrNotState, *doc.Version)
	case doc.FormatVersion == "":
		return nil, fmt.Errorf("%s: %w: it has no \"format_version\"; want the output of `terraform show -json`", path, ErrNotState)
	case !strings.HasPrefix(doc.FormatVersion, "1."):
		return nil, fmt.Errorf("%s: %w: show -json format_version %s; only 1.x is read", path, ErrNotState, doc.FormatVersion)
	}
	s := &State{File: path}
	values := doc.Values
	if doc.PlannedValues != nil || doc.ResourceChanges != nil { // a plan
		values = nil
		if doc.PriorState != nil {
			values = doc.PriorState.Values
		}
		for _, rc := range doc.ResourceChanges {
			if rc.Mode != "managed" || !IsKayoType(rc.Type) || !isCreate(rc.Change.Actions) {
				continue
			}
			s.Creates = append(s.Creates, Instance{Address: rc.Address, Module: rc.ModuleAddress, Type: rc.Type,
				Name: rc.Name, Key: rc.Index, Values: rc.Change.After})
		}
	}
	if values != nil {
		var walk func(m showModule)
		walk = func(m showModule) {
			for _, r := range m.Resources {
				if r.Mode == "managed" && IsKayoType(r.Type) {
					s.Held = append(s.Held, Instance{Address: r.Address, Module: m.Address, Type: r.Type, Name: r.Name,
						Key: r.Index, Values: r.Values})
				}
			}
			for _, c := range m.ChildModules {
				walk(c)
			}
		}
		walk(values.RootModule)
	}
	return s, nil
}

// isCreate: the plan creates the instance anew (a replacement's create
// is of an object the state holds already).
func isCreate(actions []string) bool { return len(actions) == 1 && actions[0] == "create" }

// decodeObject decodes b, which must be one JSON object.
func decodeObject(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errors.New("the file is empty")
	}
	if b[0] != '{' {
		return errors.New("it is not a JSON object")
	}
	return json.Unmarshal(b, v)
}

// address is the full address of an instance of a state file.
func address(module, typ, name string, key any) string {
	a := typ + "." + name
	if module != "" {
		a = module + "." + a
	}
	return a + keySuffix(key)
}

// keySuffix is an instance key as an address writes it.
func keySuffix(key any) string {
	switch k := key.(type) {
	case nil:
		return ""
	case string:
		b, _ := json.Marshal(k)
		return "[" + string(b) + "]"
	case float64:
		return fmt.Sprintf("[%d]", int64(k))
	default:
		return fmt.Sprintf("[%v]", k)
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
