package catalog

import (
	"slices"
	"strings"
	"testing"

	"github.com/levyhq/levy/internal/money"
)

func valuesOf(m map[string]string) func(string) (money.Decimal, bool) {
	return func(k string) (money.Decimal, bool) {
		s, ok := m[k]
		if !ok {
			return money.Zero, false
		}
		return money.MustParse(s), true
	}
}

func TestExpressionEval(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		src    string
		values map[string]string
		props  map[string]string
		want   string
	}{
		{"DESIGN credits", "input_tokens * 0.001 + output_tokens * 0.004", map[string]string{"input_tokens": "1500", "output_tokens": "800"}, nil, "4.7"},
		{"missing measurement reads 0", "input_tokens * 0.001 + output_tokens * 0.004", map[string]string{"input_tokens": "1500"}, nil, "1.5"},
		{"all missing", "input_tokens * 0.001 + output_tokens * 0.004", nil, nil, "0"},
		{"decimal literal is exact", "a * 0.1", map[string]string{"a": "3"}, nil, "0.3"},
		{"fractional input", "a * 2", map[string]string{"a": "0.000000000000000000000000000001"}, nil, "0.000000000000000000000000000002"},
		{"exact sum of tenths", "a + 0.1 + 0.2", map[string]string{"a": "0"}, nil, "0.3"},
		{"subtraction", "a - b", map[string]string{"a": "10", "b": "12.5"}, nil, "-2.5"},
		{"unary minus", "-a + 5", map[string]string{"a": "2"}, nil, "3"},
		{"parentheses", "(a + b) * 2", map[string]string{"a": "1", "b": "2"}, nil, "6"},
		{"integer literal", "a * 1000000", map[string]string{"a": "0.000003"}, nil, "3"},
		{"exponent literal", "a * 1e-6", map[string]string{"a": "3"}, nil, "0.000003"},
		{"min", "min(a, b)", map[string]string{"a": "3", "b": "2.5"}, nil, "2.5"},
		{"max", "max(a, b)", map[string]string{"a": "3", "b": "2.5"}, nil, "3"},
		{"max with a missing value", "max(a, b)", map[string]string{"a": "3"}, nil, "3"},
		{"ceil", "ceil(a / 1000)", map[string]string{"a": "1001"}, nil, "2"},
		{"ceil exact", "ceil(a / 1000)", map[string]string{"a": "2000"}, nil, "2"},
		{"floor", "floor(a / 1000)", map[string]string{"a": "1999"}, nil, "1"},
		{"floor negative", "floor(0 - a)", map[string]string{"a": "1.5"}, nil, "-2"},
		{"abs", "abs(a - b)", map[string]string{"a": "1", "b": "4"}, nil, "3"},
		{"terminating division", "a / 4", map[string]string{"a": "1"}, nil, "0.25"},
		{"division rounds at ExprDivisionScale", "a / 3", map[string]string{"a": "1"}, nil, "0.333333333333333333"},
		{"division rounds half up", "a / 3", map[string]string{"a": "2"}, nil, "0.666666666666666667"},
		{"negative division rounds away from zero", "-a / 3", map[string]string{"a": "2"}, nil, "-0.666666666666666667"},
		{"division of a large value", "a / 7", map[string]string{"a": "1000000"}, nil, "142857.142857142857142857"},
		{"comparison in a conditional", "a > b ? a : b", map[string]string{"a": "1", "b": "2"}, nil, "2"},
		{"equality of decimals", "a == 1.0 ? 10 : 20", map[string]string{"a": "1"}, nil, "10"},
		{"property selects", `properties.model == "claude-opus-4" ? input_tokens * 5 : input_tokens`, map[string]string{"input_tokens": "10"}, map[string]string{"model": "claude-opus-4"}, "50"},
		{"property other value", `properties.model == "claude-opus-4" ? input_tokens * 5 : input_tokens`, map[string]string{"input_tokens": "10"}, map[string]string{"model": "claude-haiku-4-5"}, "10"},
		{"absent property reads empty", `properties.model == "" ? 1 : 2`, map[string]string{"x": "1"}, nil, "1"},
		{"property in a list", `properties.tier in ["pro", "team"] ? a : 0`, map[string]string{"a": "7"}, map[string]string{"tier": "team"}, "7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := CompileExpression(tc.src)
			if err != nil {
				t.Fatalf("CompileExpression(%q): %v", tc.src, err)
			}
			got, err := e.Eval(valuesOf(tc.values), tc.props)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !got.Equal(money.MustParse(tc.want)) {
				t.Errorf("%s = %s, want %s", tc.src, got, tc.want)
			}
		})
	}
}

func TestExpressionDivisionScale(t *testing.T) {
	t.Parallel()
	e, err := CompileExpression("a / 3")
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Eval(valuesOf(map[string]string{"a": "1"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if -got.Exponent() != ExprDivisionScale {
		t.Errorf("1/3 = %s has %d places, want ExprDivisionScale = %d", got, -got.Exponent(), ExprDivisionScale)
	}
}

func TestExpressionMetrics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want []string
	}{
		{"output_tokens * 0.004 + input_tokens * 0.001", []string{"input_tokens", "output_tokens"}},
		{"max(b, a) + ceil(a) + min(c, 1) + floor(d) + abs(b)", []string{"a", "b", "c", "d"}},
		{`properties.model == "x" ? reasoning_tokens : 0`, []string{"reasoning_tokens"}},
		{"a * a * a", []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			t.Parallel()
			e, err := CompileExpression(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(e.Metrics, tc.want) {
				t.Errorf("Metrics = %v, want %v", e.Metrics, tc.want)
			}
			if e.Source != tc.src {
				t.Errorf("Source = %q", e.Source)
			}
		})
	}
}

func TestExpressionCompileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src, msg string
	}{
		{"", "is empty"},
		{"a +", "does not parse"},
		{"a * (b", "does not parse"},
		{"a > 1", "must compute a number, not bool"},
		{"a == b", "must compute a number, not bool"},
		{"properties.model", "must compute a number, not string"},
		{`"text"`, "must compute a number, not string"},
		{"sqrt(a)", "does not compile"},
		{"len(a)", "does not compile"},
		{`a + properties.model`, "does not compile"},
		{"a * 12345678901234567890", "does not parse"},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			t.Parallel()
			e, err := CompileExpression(tc.src)
			if err == nil {
				t.Fatalf("CompileExpression(%q) = %+v, want an error", tc.src, e)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines", err)
			}
		})
	}
}

// TestExpressionLiteralsAreExact: the Expression doc promises that "every number literal is read
// as the decimal it was written as". Literals of more than 15-17 significant digits are not: the
// literal goes through float64 (ast.FloatNode) and strconv.FormatFloat.
func TestExpressionLiteralsAreExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src, a, want string
	}{
		{"a * 0.000003", "1", "0.000003"},
		{"a * 0.333333333333333", "3", "0.999999999999999"},
		{"a * 0.1234567890123456789", "1", "0.1234567890123456789"},
		{"a * 1.00000000000000000001", "1", "1.00000000000000000001"},
		{"a + 9007199254740993.5", "0", "9007199254740993.5"},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			t.Parallel()
			e, err := CompileExpression(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Eval(valuesOf(map[string]string{"a": tc.a}), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(money.MustParse(tc.want)) {
				t.Errorf("%s with a = %s gives %s, want %s", tc.src, tc.a, got, tc.want)
			}
		})
	}
}

// TestExpressionLiteralOutOfRange: a literal beyond money.Parse's limits compiles but then fails
// on every evaluation (so every event fed to the meter fails to rate). It should be rejected
// when the catalog is loaded.
func TestExpressionLiteralOutOfRange(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"a * 1e30", "a * 1e-40"} {
		t.Run(src, func(t *testing.T) {
			t.Parallel()
			e, err := CompileExpression(src)
			if err != nil {
				return // rejected up front: good
			}
			if _, err := e.Eval(valuesOf(map[string]string{"a": "1"}), nil); err != nil {
				t.Errorf("CompileExpression(%q) accepted a literal that every Eval rejects: %v", src, err)
			}
		})
	}
}
