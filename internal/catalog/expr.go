package catalog

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"github.com/levyhq/levy/internal/money"
)

// Expression is a derived meter's formula, compiled once. It evaluates over one event's
// measurements (missing ones are 0) and properties (`properties.model`, "" when absent) with
// exact decimal arithmetic: every number literal is read as the decimal it was written as, and
// + - * / and comparisons work on decimals. Division that does not terminate is rounded half
// away from zero at ExprDivisionScale places. Functions: min, max, ceil, floor, abs.
type Expression struct {
	Source  string
	Metrics []string // measurement keys the formula reads, sorted
	// UsesProperties is true when the formula reads event properties; otherwise Eval may be
	// given nil properties.
	UsesProperties bool
	program        *vm.Program
}

// vms reuses expression virtual machines across evaluations.
var vms = sync.Pool{New: func() any { return new(vm.VM) }}

// ExprDivisionScale is the number of decimal places kept when a derived meter divides and the
// quotient does not terminate.
const ExprDivisionScale = 18

// exprNum is the decimal type the expression language computes with.
type exprNum = money.Decimal

var exprNumType = reflect.TypeOf(money.Decimal{})

// exprFunc is one function of the expression language: its implementation on untyped
// arguments (called without reflection) and its typed signature for the checker.
type exprFunc struct {
	fn  func(params ...any) (any, error)
	sig any
}

func dec2(f func(a, b exprNum) exprNum) exprFunc {
	return exprFunc{func(p ...any) (any, error) { return f(p[0].(exprNum), p[1].(exprNum)), nil }, new(func(exprNum, exprNum) exprNum)}
}

func cmp2(f func(a, b exprNum) bool) exprFunc {
	return exprFunc{func(p ...any) (any, error) { return f(p[0].(exprNum), p[1].(exprNum)), nil }, new(func(exprNum, exprNum) bool)}
}

func dec1(f func(a exprNum) exprNum) exprFunc {
	return exprFunc{func(p ...any) (any, error) { return f(p[0].(exprNum)), nil }, new(func(exprNum) exprNum)}
}

var exprFuncs = map[string]exprFunc{
	"__dec": {func(p ...any) (any, error) { return money.Parse(p[0].(string)) }, new(func(string) exprNum)},
	"__add": dec2(func(a, b exprNum) exprNum { return a.Add(b) }),
	"__sub": dec2(func(a, b exprNum) exprNum { return a.Sub(b) }),
	"__mul": dec2(func(a, b exprNum) exprNum { return a.Mul(b) }),
	"__div": dec2(func(a, b exprNum) exprNum {
		if b.IsZero() {
			return money.Zero
		}
		return a.DivRound(b, ExprDivisionScale)
	}),
	"__lt":  cmp2(func(a, b exprNum) bool { return a.LessThan(b) }),
	"__le":  cmp2(func(a, b exprNum) bool { return a.LessThanOrEqual(b) }),
	"__gt":  cmp2(func(a, b exprNum) bool { return a.GreaterThan(b) }),
	"__ge":  cmp2(func(a, b exprNum) bool { return a.GreaterThanOrEqual(b) }),
	"__eq":  cmp2(func(a, b exprNum) bool { return a.Equal(b) }),
	"__ne":  cmp2(func(a, b exprNum) bool { return !a.Equal(b) }),
	"__neg": dec1(func(a exprNum) exprNum { return a.Neg() }),
	"min":   dec2(money.Min),
	"max":   dec2(money.Max),
	"ceil":  dec1(func(a exprNum) exprNum { return a.Ceil() }),
	"floor": dec1(func(a exprNum) exprNum { return a.Floor() }),
	"abs":   dec1(func(a exprNum) exprNum { return a.Abs() }),
}

// literalPatcher turns number literals into exact decimals read from their source text, and
// unary minus into __neg.
type literalPatcher struct {
	src []rune
	err error
}

func (lp *literalPatcher) literal(node *ast.Node) {
	loc := (*node).Location()
	text := ""
	if loc.From >= 0 && loc.To <= len(lp.src) && loc.From < loc.To {
		text = string(lp.src[loc.From:loc.To])
	}
	d, err := money.Parse(text)
	if err != nil && lp.err == nil {
		lp.err = fmt.Errorf("number %q is not a decimal Levy can read exactly", text)
	}
	// A constant: the literal is parsed once, here, never per evaluation.
	ast.Patch(node, &ast.ConstantNode{Value: d})
	(*node).SetType(exprNumType)
}

func (lp *literalPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IntegerNode, *ast.FloatNode:
		lp.literal(node)
	case *ast.UnaryNode:
		if n.Operator == "-" {
			call := &ast.CallNode{Callee: &ast.IdentifierNode{Value: "__neg"}, Arguments: []ast.Node{n.Node}}
			ast.Patch(node, call)
			(*node).SetType(exprNumType)
		}
	}
}

// identCollector gathers the free identifiers of an expression.
type identCollector struct{ names map[string]bool }

func (c *identCollector) Visit(node *ast.Node) {
	if n, ok := (*node).(*ast.IdentifierNode); ok {
		c.names[n.Value] = true
	}
}

// CompileExpression compiles a derived meter's formula. The result must be a number.
func CompileExpression(src string) (*Expression, error) {
	if src == "" {
		return nil, errors.New("is empty")
	}
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("does not parse: %v", firstLine(err.Error()))
	}
	ic := &identCollector{names: map[string]bool{}}
	ast.Walk(&tree.Node, ic)
	env := map[string]any{"properties": map[string]string{}}
	var metrics []string
	for name := range ic.names {
		if _, fn := exprFuncs[name]; fn || name == "properties" {
			continue
		}
		env[name] = money.Zero
		metrics = append(metrics, name)
	}
	sort.Strings(metrics)
	lp := &literalPatcher{src: []rune(src)}
	opts := []expr.Option{expr.Env(env), expr.DisableAllBuiltins(), expr.Patch(lp)}
	for name, f := range exprFuncs {
		opts = append(opts, expr.Function(name, f.fn, f.sig))
	}
	program, err := expr.Compile(src, append(opts,
		expr.Operator("+", "__add"),
		expr.Operator("-", "__sub"),
		expr.Operator("*", "__mul"),
		expr.Operator("/", "__div"),
		expr.Operator("<", "__lt"),
		expr.Operator("<=", "__le"),
		expr.Operator(">", "__gt"),
		expr.Operator(">=", "__ge"),
		expr.Operator("==", "__eq"),
		expr.Operator("!=", "__ne"),
		expr.Optimize(false),
	)...)
	if lp.err != nil {
		return nil, lp.err
	}
	if err != nil {
		return nil, fmt.Errorf("does not compile: %v", firstLine(err.Error()))
	}
	if t := program.Node().Type(); t == nil || t != exprNumType {
		return nil, fmt.Errorf("must compute a number, not %v", t)
	}
	return &Expression{Source: src, Metrics: metrics, UsesProperties: ic.names["properties"], program: program}, nil
}

// Eval runs the formula. values returns a measurement's value (ok false when the event lacks
// it: it reads as 0); props returns a property's text.
func (e *Expression) Eval(values func(key string) (money.Decimal, bool), props map[string]string) (money.Decimal, error) {
	env := make(map[string]any, len(e.Metrics)+1)
	for _, k := range e.Metrics {
		v, ok := values(k)
		if !ok {
			v = money.Zero
		}
		env[k] = v
	}
	if props == nil {
		props = map[string]string{}
	}
	env["properties"] = props
	machine := vms.Get().(*vm.VM)
	out, err := machine.Run(e.program, env)
	vms.Put(machine)
	if err != nil {
		return money.Zero, fmt.Errorf("expression %q: %v", e.Source, firstLine(err.Error()))
	}
	d, ok := out.(money.Decimal)
	if !ok {
		return money.Zero, fmt.Errorf("expression %q did not compute a number", e.Source)
	}
	return d, nil
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
