// Package testenv finds the real servers that integration tests run against (PostgreSQL,
// Redis) from the environment, and decides what happens when one is missing.
//
// A missing server skips the test loudly, naming the variable to set, unless
// LEVY_TEST_REQUIRE_SERVICES=1 (set in CI), in which case it fails: a suite can never pass by
// silently skipping.
package testenv

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// Environment variables read by this package.
const (
	RequireServicesVar = "LEVY_TEST_REQUIRE_SERVICES"
	DatabaseURLVar     = "LEVY_TEST_DATABASE_URL"
	RedisURLVar        = "LEVY_TEST_REDIS_URL"
)

// Defaults used when the variables are unset: the local servers.
const (
	DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
)

// dialTimeout bounds the reachability check.
const dialTimeout = 2 * time.Second

// RequireServices reports whether missing services must fail tests.
func RequireServices() bool { return os.Getenv(RequireServicesVar) == "1" }

// Skip reports that service is unavailable because of err: it fails the test when
// LEVY_TEST_REQUIRE_SERVICES=1 and otherwise skips it with a message naming the variables to
// set. service is a name such as "PostgreSQL" or "Redis".
func Skip(t testing.TB, service string, err error) {
	t.Helper()
	hint := "the variable that points at it"
	if v, ok := serviceVars[service]; ok {
		hint = v
	}
	if RequireServices() {
		t.Fatalf("%s unavailable: %v (%s=1, so this is a failure; set %s to a reachable server)",
			service, err, RequireServicesVar, hint)
		return
	}
	t.Skipf("SKIPPING: %s unavailable: %v. Set %s to a reachable server, or %s=1 to make this a failure.",
		service, err, hint, RequireServicesVar)
}

// serviceVars names the URL variable of each known service, for Skip's message.
var serviceVars = map[string]string{
	"PostgreSQL": DatabaseURLVar,
	"Redis":      RedisURLVar,
}

// DatabaseURL returns the PostgreSQL URL for tests (LEVY_TEST_DATABASE_URL, or the local
// default) after checking that its host accepts connections; otherwise it calls Skip.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	return serviceURL(t, "PostgreSQL", DatabaseURLVar, DefaultDatabaseURL, "5432")
}

// RedisURL returns the Redis URL for tests (LEVY_TEST_REDIS_URL, or the local default) after
// checking that its host accepts connections; otherwise it calls Skip.
func RedisURL(t testing.TB) string {
	t.Helper()
	return serviceURL(t, "Redis", RedisURLVar, DefaultRedisURL, "6379")
}

func serviceURL(t testing.TB, service, envVar, def, defPort string) string {
	t.Helper()
	raw := os.Getenv(envVar)
	if raw == "" {
		raw = def
	}
	if err := Reachable(raw, defPort); err != nil {
		shown := "unparsable URL"
		if u, perr := url.Parse(raw); perr == nil {
			shown = u.Redacted()
		}
		Skip(t, service, fmt.Errorf("%s (%s=%q)", err, envVar, shown))
	}
	return raw
}

// Reachable checks that the host of a service URL accepts TCP connections; defPort is used
// when the URL names none.
func Reachable(rawURL, defPort string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "" {
		host = "localhost"
	}
	port := u.Port()
	if port == "" {
		port = defPort
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), dialTimeout)
	if err != nil {
		return err
	}
	return conn.Close()
}
