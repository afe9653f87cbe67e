package main

import (
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
)

func TestSourceTextNamesTheAgents(t *testing.T) {
	at := time.Date(2026, 12, 5, 17, 2, 3, 0, time.UTC)
	x := validate.Test{Source: validate.SourceProbed, Agents: []validate.AgentData{{Node: "Y-21-2k8x64", At: at}, {Node: "Y-22-2k8x64", At: at.Add(time.Second)}}}
	if got, want := sourceText(x), "probed by Y-21-2k8x64 17:02:03, Y-22-2k8x64 17:02:04"; got != want {
		t.Errorf("sourceText = %q, want %q", got, want)
	}
	if got := sourceText(validate.Test{Source: validate.SourceDeclared}); got != "declared" {
		t.Errorf("a declared test: %q", got)
	}
}
