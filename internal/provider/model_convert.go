package provider

import (
	"context"
	"reflect"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/attr/xattr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// A resource's model (a struct of attr.Value fields tagged tfsdk) read
// from and written to a plan or state without the framework's reflection:
// tfsdk's Get and Set look the struct's tags up on every call and check
// each tag with a regexp compiled anew (getStructTags in the framework's
// internal/reflect, v1.19.0), which with 200 VMs was about a twentieth of
// the provider's CPU in the VM benchmark's create (bench/vm_test.go,
// KAYO_PROFILE_DIR). The fields of a struct type are looked up once here.
// A model or a value this path does not handle as the framework would (a
// field type that validates itself, a value of another type) goes
// through tfsdk instead, with its diagnostics.

// modelFields is a model type's tfsdk names, by field.
type modelFields struct {
	names []string
	index []int
}

// modelTypes caches modelFields by struct type (type information only:
// the same for every caller).
var modelTypes sync.Map // reflect.Type -> *modelFields (nil: unsupported)

func fieldsOf(t reflect.Type) *modelFields {
	if f, ok := modelTypes.Load(t); ok {
		return f.(*modelFields)
	}
	var f *modelFields
	if t.Kind() == reflect.Struct {
		f = &modelFields{}
		valueType := reflect.TypeFor[attr.Value]()
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("tfsdk")
			if tag == "-" {
				continue
			}
			if tag == "" || !sf.IsExported() || !sf.Type.Implements(valueType) || sf.Anonymous {
				f = nil
				break
			}
			f.names = append(f.names, tag)
			f.index = append(f.index, i)
		}
	}
	modelTypes.Store(t, f)
	return f
}

// modelValue is m (a model struct) as a value of the object type typ, or
// false when tfsdk must convert it.
func modelValue(ctx context.Context, typ attr.Type, m any) (tftypes.Value, bool) {
	ot, ok := typ.(attr.TypeWithAttributeTypes)
	rv := reflect.ValueOf(m)
	if !ok || rv.Kind() != reflect.Struct {
		return tftypes.Value{}, false
	}
	f := fieldsOf(rv.Type())
	types := ot.AttributeTypes()
	if f == nil || len(f.names) != len(types) {
		return tftypes.Value{}, false
	}
	vals := make(map[string]tftypes.Value, len(types))
	for i, name := range f.names {
		at, ok := types[name]
		if !ok {
			return tftypes.Value{}, false
		}
		v := rv.Field(f.index[i]).Interface().(attr.Value)
		if _, ok := v.(xattr.ValidateableAttribute); ok || !at.TerraformType(ctx).Equal(v.Type(ctx).TerraformType(ctx)) {
			return tftypes.Value{}, false
		}
		tv, err := v.ToTerraformValue(ctx)
		if err != nil || !valid(ctx, at, tv, name) {
			return tftypes.Value{}, false
		}
		vals[name] = tv
	}
	tt := typ.TerraformType(ctx)
	if tftypes.ValidateValue(tt, vals) != nil {
		return tftypes.Value{}, false
	}
	return tftypes.NewValue(tt, vals), true
}

// valid runs the check the framework runs on conversion of a value tv of
// type t at attribute name (the deprecated xattr.TypeWithValidate, which
// the basic number and collection types still implement).
func valid(ctx context.Context, t attr.Type, tv tftypes.Value, name string) bool {
	//nolint:staticcheck // the framework still runs it, so must this path
	if tw, ok := t.(xattr.TypeWithValidate); ok {
		return !tw.Validate(ctx, tv, path.Root(name)).HasError()
	}
	return true
}

// modelFrom reads raw, an object of type typ, into target (a pointer to a
// model struct), or reports false when tfsdk must.
func modelFrom(ctx context.Context, typ attr.Type, raw tftypes.Value, target any) bool {
	ot, ok := typ.(attr.TypeWithAttributeTypes)
	rv := reflect.ValueOf(target)
	if !ok || rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct || !raw.IsKnown() || raw.IsNull() {
		return false
	}
	rv = rv.Elem()
	f := fieldsOf(rv.Type())
	types := ot.AttributeTypes()
	if f == nil || len(f.names) != len(types) || !raw.Type().Equal(typ.TerraformType(ctx)) {
		return false
	}
	var vals map[string]tftypes.Value
	if err := raw.As(&vals); err != nil {
		return false
	}
	out := reflect.New(rv.Type()).Elem()
	for i, name := range f.names {
		at, ok := types[name]
		tv, have := vals[name]
		if !ok || !have || !valid(ctx, at, tv, name) {
			return false
		}
		v, err := at.ValueFromTerraform(ctx, tv)
		if err != nil {
			return false
		}
		if _, ok := v.(xattr.ValidateableAttribute); ok {
			return false
		}
		x := reflect.ValueOf(v)
		field := out.Field(f.index[i])
		if !x.Type().AssignableTo(field.Type()) {
			return false
		}
		field.Set(x)
	}
	rv.Set(out)
	return true
}

// getPlan is req.Plan.Get(ctx, target) for a model struct.
func getPlan(ctx context.Context, p tfsdk.Plan, target any) diag.Diagnostics {
	if modelFrom(ctx, p.Schema.Type(), p.Raw, target) {
		return nil
	}
	return p.Get(ctx, target)
}

// getState is req.State.Get(ctx, target) for a model struct.
func getState(ctx context.Context, s tfsdk.State, target any) diag.Diagnostics {
	if modelFrom(ctx, s.Schema.Type(), s.Raw, target) {
		return nil
	}
	return s.Get(ctx, target)
}

// setPlanModel is resp.Plan.Set(ctx, m) for a model struct.
func setPlanModel(ctx context.Context, p *tfsdk.Plan, m any) diag.Diagnostics {
	if v, ok := modelValue(ctx, p.Schema.Type(), m); ok {
		return p.Set(ctx, v)
	}
	return p.Set(ctx, m)
}

// setStateModel is resp.State.Set(ctx, m) for a model struct.
func setStateModel(ctx context.Context, s *tfsdk.State, m any) diag.Diagnostics {
	if v, ok := modelValue(ctx, s.Schema.Type(), m); ok {
		return s.Set(ctx, v)
	}
	return s.Set(ctx, m)
}
