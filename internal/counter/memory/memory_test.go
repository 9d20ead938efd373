package memory_test

import (
	"testing"

	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/counter/countertest"
	"github.com/levyhq/levy/internal/counter/memory"
)

func TestConformance(t *testing.T) {
	countertest.Exercise(t, func(t *testing.T) counter.Store {
		s := memory.New(memory.Options{})
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func BenchmarkApply(b *testing.B) {
	countertest.BenchmarkApply(b, func(b *testing.B) counter.Store { return memory.New(memory.Options{}) })
}
