package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// TestVMModelConvertsWithoutFrameworkReflection: the VM model is read from
// and written to a plan or state by model_convert.go, not by tfsdk's
// reflection (which compiles a regexp per field on every call), and the
// result is the framework's own, value for value: known, null and
// unknown values, nested objects and lists.
func TestVMModelConvertsWithoutFrameworkReflection(t *testing.T) {
	ctx := context.Background()
	var sr resource.SchemaResponse
	NewVirtualMachineResource().Schema(ctx, resource.SchemaRequest{}, &sr)
	typ := sr.Schema.Type()
	// A model as tfsdk reads it from an object of null attributes, then
	// filled as Create and ModifyPlan fill it.
	nulls := map[string]tftypes.Value{}
	for name, at := range sr.Schema.Type().(attr.TypeWithAttributeTypes).AttributeTypes() {
		nulls[name] = tftypes.NewValue(at.TerraformType(ctx), nil)
	}
	empty := tfsdk.State{Schema: sr.Schema, Raw: tftypes.NewValue(typ.TerraformType(ctx), nulls)}
	var m vmModel
	if d := empty.Get(ctx, &m); d.HasError() {
		t.Fatal(d)
	}
	vm := engine.VM{VMSpec: engine.VMSpec{Cluster: "HVCLUSTER", Name: "WEB01", Volume: "vol-1", MemoryMB: 1024, ProcessorCount: 2,
		Adapters: []engine.VMAdapter{{Switch: "Public"}}, State: engine.VMRunning}, Node: "H1", Status: engine.VMRunning,
		VHDPath: `O:\WEB01\WEB01.vhdx`, ConfigPath: `O:\WEB01\WEB01.xml`}
	m = vmToModel(vm, m)
	m.CurrentNode, m.StatusReason = types.StringUnknown(), types.StringNull()
	m.NetworkAdapters = adaptersValue("HVCLUSTER", "WEB01", []string{"Public", "Private"}, []attr.Value{nil, nil}, false)

	want := tfsdk.State{Schema: sr.Schema}
	if d := want.Set(ctx, m); d.HasError() {
		t.Fatal(d)
	}
	v, ok := modelValue(ctx, typ, m)
	if !ok {
		t.Fatal("the VM model was written through tfsdk's reflection (modelValue refused it)")
	}
	if !v.Equal(want.Raw) {
		t.Fatalf("modelValue:\n%s\nwant (tfsdk):\n%s", v, want.Raw)
	}
	var got, fw vmModel
	if !modelFrom(ctx, typ, want.Raw, &got) {
		t.Fatal("the VM model was read through tfsdk's reflection (modelFrom refused it)")
	}
	if d := want.Get(ctx, &fw); d.HasError() {
		t.Fatal(d)
	}
	if !sameModel(got, fw) || !sameModel(got, m) {
		t.Fatalf("modelFrom: %+v\nwant (tfsdk): %+v", got, fw)
	}
	// What the fast path does not handle goes through tfsdk: a struct
	// that does not match the object, a null object.
	type other struct {
		Name types.String `tfsdk:"name"`
	}
	if _, ok := modelValue(ctx, typ, other{}); ok {
		t.Error("modelValue took a struct with one of the object's attributes")
	}
	if modelFrom(ctx, typ, want.Raw, &other{}) {
		t.Error("modelFrom filled a struct with one of the object's attributes")
	}
	if modelFrom(ctx, typ, tftypes.NewValue(typ.TerraformType(ctx), nil), &got) {
		t.Error("modelFrom read a null object")
	}
	st := tfsdk.State{Schema: sr.Schema}
	if d := setStateModel(ctx, &st, m); d.HasError() || !st.Raw.Equal(want.Raw) {
		t.Fatalf("setStateModel: %v, %s", d, st.Raw)
	}
	var back vmModel
	if d := getState(ctx, st, &back); d.HasError() || !sameModel(back, m) {
		t.Fatalf("getState: %v, %+v", d, back)
	}
}

func BenchmarkVMModelConvert(b *testing.B) {
	ctx := context.Background()
	var sr resource.SchemaResponse
	NewVirtualMachineResource().Schema(ctx, resource.SchemaRequest{}, &sr)
	nulls := map[string]tftypes.Value{}
	for name, at := range sr.Schema.Type().(attr.TypeWithAttributeTypes).AttributeTypes() {
		nulls[name] = tftypes.NewValue(at.TerraformType(ctx), nil)
	}
	st := tfsdk.State{Schema: sr.Schema, Raw: tftypes.NewValue(sr.Schema.Type().TerraformType(ctx), nulls)}
	b.Run("tfsdk", func(b *testing.B) {
		for b.Loop() {
			var m vmModel
			_ = st.Get(ctx, &m)
			_ = st.Set(ctx, m)
		}
	})
	b.Run("model_convert", func(b *testing.B) {
		for b.Loop() {
			var m vmModel
			_ = getState(ctx, st, &m)
			_ = setStateModel(ctx, &st, m)
		}
	})
}
