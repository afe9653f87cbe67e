package provider

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/orphans"
)

// engineDiags turns an engine error into diagnostics that name the
// attribute when the engine says which one was wrong.
func engineDiags(summary string, err error) diag.Diagnostics {
	var diags diag.Diagnostics
	var inErr *engine.InputError
	var valErr *engine.ValidationError
	switch {
	case errors.As(err, &valErr):
		for _, t := range valErr.Failed {
			attr := t.Attribute
			if attr == "" {
				attr = "nodes"
			}
			diags.AddAttributeError(path.Root(attr), fmt.Sprintf("%s: validation test failed: %s", summary, t.Name),
				fmt.Sprintf("%s (category %s). %s", t.Message, t.Category, validationHint))
		}
		if len(valErr.Failed) == 0 {
			diags.AddError(summary, err.Error())
		}
	case errors.As(err, &inErr):
		diags.AddAttributeError(attrPath(inErr.Attribute), summary, inErr.Error())
	case errors.Is(err, engine.ErrLockTimeout):
		diags.AddError(summary, err.Error()+"\n\nAnother process (a terraform run, kayoctl or an agent) held the "+
			"cluster database longer than the provider's lock_timeout. Retry, or raise lock_timeout.")
	case errors.Is(err, engine.ErrExists):
		diags.AddError(summary, err.Error()+existsHint(err))
	default:
		diags.AddError(summary, err.Error())
	}
	return diags
}

// existing is an engine error saying that the object a resource creates
// exists already, with the resource type and import ID that adopt it.
type existing struct {
	error
	typ, id string
}

func (e existing) Unwrap() error { return e.error }

// asExisting marks err, when it says the object exists, with how to
// import it as a typ whose import ID is id.
func asExisting(err error, typ, id string) error {
	if errors.Is(err, engine.ErrExists) {
		return existing{err, typ, id}
	}
	return err
}

// existsHint tells how to adopt an object that exists already: an import
// block when the resource is known (the provider is not told the
// resource's address, so `to` is a placeholder), and the command that
// finds every such object an interrupted apply left.
func existsHint(err error) string {
	var ex existing
	if !errors.As(err, &ex) {
		return "\n\nUse terraform import to manage the existing object."
	}
	return "\n\nAdopt it with this import block in a .tf file (Terraform >= 1.5, OpenTofu >= 1.6), NAME " +
		"being this resource's name in the configuration, then apply:\n\n" +
		orphans.ImportBlock(ex.typ+".NAME", ex.id) +
		"\nAfter an interrupted apply, `kayoctl state orphans --state terraform.tfstate` writes the import blocks " +
		"of every object no state holds."
}

var pathName = path.Root("name")

const validationHint = "The cluster was not formed or changed; fix the hosts or the cluster configuration and apply again."

// attrPath parses the engine's attribute names ("network_adapters[1].address").
func attrPath(attr string) path.Path {
	var p path.Path
	name := ""
	flush := func() {
		if name == "" {
			return
		}
		if p.Equal(path.Empty()) {
			p = path.Root(name)
		} else {
			p = p.AtName(name)
		}
		name = ""
	}
	for i := 0; i < len(attr); i++ {
		switch c := attr[i]; c {
		case '.':
			flush()
		case '[':
			flush()
			j := i + 1
			n := 0
			for j < len(attr) && attr[j] >= '0' && attr[j] <= '9' {
				n = n*10 + int(attr[j]-'0')
				j++
			}
			p = p.AtListIndex(n)
			i = j // skips ']'
		default:
			name += string(c)
		}
	}
	flush()
	if p.Equal(path.Empty()) {
		return path.Root(attr)
	}
	return p
}

// waitRecorder collects how long an operation waited for the database so
// the user sees it as a warning, not only in TF_LOG output.
type waitRecorder struct {
	mu     sync.Mutex
	waited time.Duration
}

type waitKey struct{}

func withWaitRecorder(ctx context.Context) (context.Context, *waitRecorder) {
	w := &waitRecorder{}
	return context.WithValue(ctx, waitKey{}, w), w
}

func noteWait(ctx context.Context, waited time.Duration) {
	if w, ok := ctx.Value(waitKey{}).(*waitRecorder); ok {
		w.mu.Lock()
		w.waited = max(w.waited, waited)
		w.mu.Unlock()
	}
}

// report adds a warning when the operation had to wait noticeably.
func (w *waitRecorder) report(diags *diag.Diagnostics, what string) {
	w.mu.Lock()
	waited := w.waited
	w.mu.Unlock()
	if waited < time.Second {
		return
	}
	diags.AddWarning("Waited for the kayo cluster database",
		fmt.Sprintf("%s waited %s for the cluster database while another process (a terraform run, kayoctl or an agent) held it.",
			what, waited.Round(100*time.Millisecond)))
}

// durationValidator accepts a positive Go duration.
type durationValidator struct{}

func (durationValidator) Description(context.Context) string {
	return "a positive Go duration such as 30s or 2m"
}
func (v durationValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (durationValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	if d, err := time.ParseDuration(s); err != nil || d <= 0 {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid duration",
			fmt.Sprintf("%s: %q is not allowed; allowed: a positive Go duration such as \"30s\" or \"2m\"", req.Path, s))
	}
}

// engineFrom takes the engine the provider configured.
func engineFrom(data any, diags *diag.Diagnostics) *engine.Engine {
	if data == nil {
		return nil // provider not configured yet (validation-only calls)
	}
	e, ok := data.(*engine.Engine)
	if !ok {
		diags.AddError("Unexpected provider data", fmt.Sprintf("expected *engine.Engine, got %T; this is a bug in the provider", data))
		return nil
	}
	return e
}

// engineCall runs one engine operation for a resource or data source
// method: it reports a noticeable wait for the database (doing names the
// operation) and turns an error into diagnostics under the summary failed,
// except errors matching one of quiet, which the caller handles (a Read
// that finds the object gone). It returns the error either way.
func engineCall[T any](ctx context.Context, diags *diag.Diagnostics, doing, failed string,
	fn func(context.Context) (T, error), quiet ...error) (T, error) {
	ctx, w := withWaitRecorder(ctx)
	v, err := fn(ctx)
	w.report(diags, doing)
	if err != nil {
		for _, q := range quiet {
			if errors.Is(err, q) {
				return v, err
			}
		}
		diags.Append(engineDiags(failed, err)...)
	}
	return v, err
}

// noValue adapts an operation that returns only an error to engineCall.
func noValue(fn func(context.Context) error) func(context.Context) (struct{}, error) {
	return func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) }
}

// reportNotes adds a warning per note the engine recorded.
func reportNotes(diags *diag.Diagnostics, notes *engine.Notes) {
	for _, n := range notes.List() {
		diags.AddWarning(n.Summary, n.Detail)
	}
}
