package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestSimulateCommand(t *testing.T) {
	code, out, stderr := runCLI(t, "simulate", "--catalog", "../../internal/simulate/testdata/catalog.yaml",
		"--usage", "../../internal/simulate/testdata/usage.jsonl", "--plan", "pro", "--json", "--progress", "never")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		Invoices []struct {
			CustomerID string `json:"customerId"`
			Total      string `json:"total"`
		} `json:"invoices"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if len(doc.Invoices) != 3 || doc.Invoices[0].Total != "50.00" {
		t.Errorf("invoices = %+v", doc.Invoices)
	}

	code, out, _ = runCLI(t, "simulate", "--catalog", "../../internal/simulate/testdata/catalog.yaml",
		"--usage", "../../internal/simulate/testdata/usage.jsonl", "--plan", "payg,pro")
	if code != 0 || !strings.Contains(out, "pro vs payg") || !strings.Contains(out, "TOTAL") {
		t.Errorf("comparison table: exit %d\n%s", code, out)
	}
}

func TestCommandErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown command", []string{"nope"}, 2, `unknown command "nope"`},
		{"missing flags", []string{"simulate"}, 2, "--catalog and --usage are required"},
		{"bad flag", []string{"simulate", "--nope"}, 2, "flag provided but not defined"},
		{"missing file", []string{"simulate", "--catalog", "nope.yaml", "--usage", "x"}, 1, "nope.yaml"},
		{"unknown plan", []string{"simulate", "--catalog", "../../internal/simulate/testdata/catalog.yaml", "--usage", "../../internal/simulate/testdata/usage.jsonl", "--plan", "gold"}, 1, "unknown plan gold"},
		{"bad format", []string{"simulate", "--catalog", "../../internal/simulate/testdata/catalog.yaml", "--usage", "x", "--format", "xml"}, 1, "--format"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	if code, out, _ := runCLI(t, "help"); code != 0 || !strings.Contains(out, "simulate") {
		t.Errorf("help: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "levy ") {
		t.Errorf("version: %d %q", code, out)
	}
}
