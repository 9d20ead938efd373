package catalog

import (
	"errors"
	"os"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzLoad feeds arbitrary documents to Load: it never panics; a rejected document gives a
// *ValidationError whose every problem has a message; an accepted one writes back as YAML that
// loads again into the same ladder and guard rules, and writing it is a fixed point.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"testdata/design.yaml", "testdata/ladder.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"currency: USD\n",
		tiersDoc(freeTier, `{key: build, threshold: "5.00", limits: {requestsPerMinute: 120}}`, `{key: scale, threshold: 50, limitMultiplier: "0.5", discount: "99.9"}`),
		tiersDoc(`{key: ent, manual: true}`, freeTier, `{key: b, threshold: 1e-3}`),
		tiersDoc(freeTier, `{key: b, threshold: "5"}`, `{key: c, threshold: "5"}`),
		"currency: USD\ntiers: {basis: lifetimeSpend, ladder: [{key: free, threshold: 0, manual: true}]}\n",
		guardDoc(`{key: a, scope: task, maxCost: "5", maxCostToPrice: 1.5, minCost: "0.5", coolDown: 1h30m}`, `{key: b, scope: customer, minMargin: 20, afterSpend: 100}`),
		guardDoc(`{key: a, scope: task, coolDown: -5s}`, `{key: a, scope: nobody}`),
		`{"currency":"USD","tiers":{"ladder":[{"key":"free","threshold":0}]},"marginGuard":[{"key":"g","scope":"task","maxCost":1}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Load(data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error is %T (%v), want *ValidationError", err, err)
			}
			if len(ve.Problems) == 0 {
				t.Fatal("ValidationError without problems")
			}
			for _, p := range ve.Problems {
				if p.Message == "" {
					t.Fatalf("problem at %q without a message", p.Path)
				}
			}
			return
		}
		out, err := yaml.Marshal(c.Document)
		if err != nil {
			t.Fatalf("writing an accepted document: %v", err)
		}
		c2, err := Load(out)
		if err != nil {
			t.Fatalf("an accepted document, written back, is rejected: %v\n%s", err, out)
		}
		if a, b := describeLadderAndGuard(c), describeLadderAndGuard(c2); a != b {
			t.Fatalf("writing back changed the ladder or rules:\n%s\nthen:\n%s", a, b)
		}
		again, err := yaml.Marshal(c2.Document)
		if err != nil || string(again) != string(out) {
			t.Fatalf("writing is not a fixed point (%v):\n%s\nthen:\n%s", err, out, again)
		}
	})
}
