package catalog

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"

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
	program *vm.Program
}

// ExprDivisionScale is the number of decimal places kept when a derived meter divides and the
// quotient does not terminate.
const ExprDivisionScale = 18

// exprNum is the decimal type the expression language computes with.
type exprNum = money.Decimal

var exprNumType = reflect.TypeOf(money.Decimal{})

var exprFuncs = map[string]any{
	"__dec": func(s string) exprNum { return money.MustParse(s) },
	"__add": func(a, b exprNum) exprNum { return a.Add(b) },
	"__sub": func(a, b exprNum) exprNum { return a.Sub(b) },
	"__mul": func(a, b exprNum) exprNum { return a.Mul(b) },
	"__div": func(a, b exprNum) exprNum {
		if b.IsZero() {
			return money.Zero
		}
		return a.DivRound(b, ExprDivisionScale)
	},
	"__lt":  func(a, b exprNum) bool { return a.LessThan(b) },
	"__le":  func(a, b exprNum) bool { return a.LessThanOrEqual(b) },
	"__gt":  func(a, b exprNum) bool { return a.GreaterThan(b) },
	"__ge":  func(a, b exprNum) bool { return a.GreaterThanOrEqual(b) },
	"__eq":  func(a, b exprNum) bool { return a.Equal(b) },
	"__ne":  func(a, b exprNum) bool { return !a.Equal(b) },
	"__neg": func(a exprNum) exprNum { return a.Neg() },
	"min": func(a, b exprNum) exprNum {
		if a.LessThan(b) {
			return a
		}
		return b
	},
	"max": func(a, b exprNum) exprNum {
		if a.GreaterThan(b) {
			return a
		}
		return b
	},
	"ceil":  func(a exprNum) exprNum { return a.Ceil() },
	"floor": func(a exprNum) exprNum { return a.Floor() },
	"abs":   func(a exprNum) exprNum { return a.Abs() },
}

// literalPatcher turns number literals into exact decimals and unary minus into __neg.
type literalPatcher struct{}

func (literalPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IntegerNode:
		call := &ast.CallNode{Callee: &ast.IdentifierNode{Value: "__dec"}, Arguments: []ast.Node{&ast.StringNode{Value: strconv.Itoa(n.Value)}}}
		ast.Patch(node, call)
		(*node).SetType(exprNumType)
	case *ast.FloatNode:
		// The shortest representation that round-trips is the literal as written for any
		// literal of up to 15 significant digits.
		s := strconv.FormatFloat(n.Value, 'f', -1, 64)
		call := &ast.CallNode{Callee: &ast.IdentifierNode{Value: "__dec"}, Arguments: []ast.Node{&ast.StringNode{Value: s}}}
		ast.Patch(node, call)
		(*node).SetType(exprNumType)
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
	for name, fn := range exprFuncs {
		env[name] = fn
	}
	program, err := expr.Compile(src,
		expr.Env(env),
		expr.DisableAllBuiltins(),
		expr.Patch(literalPatcher{}),
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
	)
	if err != nil {
		return nil, fmt.Errorf("does not compile: %v", firstLine(err.Error()))
	}
	if t := program.Node().Type(); t == nil || t != exprNumType {
		return nil, fmt.Errorf("must compute a number, not %v", t)
	}
	return &Expression{Source: src, Metrics: metrics, program: program}, nil
}

// Eval runs the formula. values returns a measurement's value (ok false when the event lacks
// it: it reads as 0); props returns a property's text.
func (e *Expression) Eval(values func(key string) (money.Decimal, bool), props map[string]string) (money.Decimal, error) {
	env := make(map[string]any, len(e.Metrics)+len(exprFuncs)+1)
	for name, fn := range exprFuncs {
		env[name] = fn
	}
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
	out, err := vm.Run(e.program, env)
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
