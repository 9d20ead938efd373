package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/usage"
)

// TestGenerateCommand: the same seed writes the same bytes, every line is a valid event, and
// --csv writes a header and one row per event that the simulator reads.
func TestGenerateCommand(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	for _, out := range []string{a, b} {
		if code, _, stderr := runCLI(t, "generate", "--events", "500", "--customers", "7", "--seed", "3", "-o", out); code != 0 {
			t.Fatalf("generate: %s", stderr)
		}
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) || len(da) == 0 {
		t.Fatal("the same seed wrote different files")
	}
	lines := strings.Split(strings.TrimSpace(string(da)), "\n")
	if len(lines) != 500 {
		t.Fatalf("%d lines, want 500", len(lines))
	}
	var dec usage.Decoder
	var ev usage.Event
	for i, l := range lines {
		if err := dec.DecodeBytes([]byte(l), time.Now(), &ev); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
	}
	csvPath := filepath.Join(dir, "u.csv")
	if code, _, stderr := runCLI(t, "generate", "--events", "50", "--csv", "-o", csvPath); code != 0 {
		t.Fatal(stderr)
	}
	code, out, stderr := runCLI(t, "simulate", "--catalog", "../../examples/catalog.yaml", "--usage", csvPath, "--plan", "payg", "--progress", "never")
	if code != 0 || !strings.Contains(out, "50 events priced") {
		t.Errorf("simulate on generated CSV: %d %q %q", code, out, stderr)
	}
}

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	p := newProgressBar(&buf, 1000)
	p.update(500)
	if !strings.Contains(buf.String(), "[===============               ]  50%") {
		t.Errorf("half way: %q", buf.String())
	}
	buf.Reset()
	p.last = time.Time{}
	p.update(2000) // more than the size (a growing file) stays a full bar at 100%
	if !strings.Contains(buf.String(), "[==============================] 100%") {
		t.Errorf("past the end: %q", buf.String())
	}
	if showProgress("auto", &buf) || !showProgress("always", &buf) || showProgress("never", os.Stderr) {
		t.Error("showProgress: auto is for terminals only")
	}
}
