package testenv

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

// fakeTB records how Skip ended a test.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }
func (f *fakeTB) Skipf(format string, args ...any)  { f.skip = fmt.Sprintf(format, args...) }

func TestSkipFailsWhenServicesRequired(t *testing.T) {
	t.Setenv(RequireServicesVar, "1")
	f := &fakeTB{}
	Skip(f, "PostgreSQL", errors.New("connection refused"))
	if f.fatal == "" || f.skip != "" {
		t.Fatalf("fatal %q, skip %q: want a failure", f.fatal, f.skip)
	}
	if !strings.Contains(f.fatal, DatabaseURLVar) || !strings.Contains(f.fatal, "connection refused") {
		t.Errorf("failure message %q does not name %s and the cause", f.fatal, DatabaseURLVar)
	}
}

func TestSkipSkipsLoudly(t *testing.T) {
	t.Setenv(RequireServicesVar, "")
	f := &fakeTB{}
	Skip(f, "Redis", errors.New("connection refused"))
	if f.skip == "" || f.fatal != "" {
		t.Fatalf("fatal %q, skip %q: want a skip", f.fatal, f.skip)
	}
	for _, want := range []string{"SKIPPING", RedisURLVar, RequireServicesVar} {
		if !strings.Contains(f.skip, want) {
			t.Errorf("skip message %q does not contain %q", f.skip, want)
		}
	}
}

func TestReachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := Reachable("postgres://u@"+addr+"/db", "1"); err != nil {
		t.Errorf("listening address unreachable: %v", err)
	}
	l.Close()
	if err := Reachable("postgres://u@"+addr+"/db", "1"); err == nil {
		t.Error("closed address reachable")
	}
}

func TestDatabaseURLFromEnvironment(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := "postgres://u@" + l.Addr().String() + "/db?sslmode=disable"
	t.Setenv(DatabaseURLVar, want)
	if got := DatabaseURL(t); got != want {
		t.Errorf("DatabaseURL = %q, want %q", got, want)
	}
}

func TestSkipRedactsPassword(t *testing.T) {
	t.Setenv(RequireServicesVar, "")
	t.Setenv(DatabaseURLVar, "postgres://u:hunter2@127.0.0.1:1/db")
	f := &fakeTB{}
	DatabaseURL(f)
	if f.skip == "" || strings.Contains(f.skip, "hunter2") {
		t.Errorf("skip message %q: want a skip without the password", f.skip)
	}
}
