package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:7070" || c.DataDir != "./levy-data" || c.SQLiteSynchronous != "FULL" || c.Ingest.MaxBatch != 1000 || c.ShutdownTimeout != 15*time.Second {
		t.Errorf("defaults: %+v", c)
	}
}

func TestFileThenEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "levy.yaml")
	os.WriteFile(path, []byte("addr: 0.0.0.0:9000\ndata: /srv/levy\ningest:\n  maxBatch: 50\n  defaultPlan: free\n"), 0o600)
	c, err := Load(path, env(map[string]string{"LEVY_ADDR": "127.0.0.1:8080", "LEVY_INGEST_MAX_GROUP": "10"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.DataDir != "/srv/levy" || c.Ingest.MaxBatch != 50 || c.Ingest.DefaultPlan != "free" || c.Ingest.MaxGroup != 10 {
		t.Errorf("file + env: %+v", c)
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	_, err := Load("", env(map[string]string{
		"LEVY_LOG_LEVEL":          "loud",
		"LEVY_LOG_FORMAT":         "xml",
		"LEVY_SQLITE_SYNCHRONOUS": "OFF",
		"LEVY_INGEST_MAX_BATCH":   "many",
		"LEVY_SHUTDOWN_TIMEOUT":   "soon",
		"LEVY_ADMIN_KEY":          "short",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"logLevel", "logFormat", "sqliteSynchronous", "LEVY_INGEST_MAX_BATCH", "LEVY_SHUTDOWN_TIMEOUT", "adminKey"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s:\n%v", want, err)
		}
	}
}

func TestUnknownFileKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "levy.yaml")
	os.WriteFile(path, []byte("adress: x\n"), 0o600)
	if _, err := Load(path, env(nil)); err == nil || !strings.Contains(err.Error(), "adress") {
		t.Errorf("err = %v", err)
	}
}

func TestAuthorizeSettings(t *testing.T) {
	c, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Authorize.Timeout != 5*time.Millisecond || c.Authorize.ReservationTTL != 10*time.Minute || c.Authorize.SafeRequestsPerMinute != 60 {
		t.Errorf("authorize defaults: %+v", c.Authorize)
	}
	path := filepath.Join(t.TempDir(), "levy.yaml")
	os.WriteFile(path, []byte("authorize:\n  timeout: 3ms\n  reservationTtl: 2m\n  safeRequestsPerMinute: 30\n"), 0o600)
	c, err = Load(path, env(map[string]string{"LEVY_AUTHORIZE_SAFE_REQUESTS_PER_MINUTE": "20"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Authorize.Timeout != 3*time.Millisecond || c.Authorize.ReservationTTL != 2*time.Minute || c.Authorize.SafeRequestsPerMinute != 20 {
		t.Errorf("authorize from file + env: %+v", c.Authorize)
	}
	c, err = Load("", env(map[string]string{"LEVY_AUTHORIZE_TIMEOUT": "250us", "LEVY_AUTHORIZE_RESERVATION_TTL": "90s"}))
	if err != nil || c.Authorize.Timeout != 250*time.Microsecond || c.Authorize.ReservationTTL != 90*time.Second {
		t.Errorf("authorize from env: %+v, %v", c.Authorize, err)
	}
	_, err = Load("", env(map[string]string{
		"LEVY_AUTHORIZE_TIMEOUT":                  "-1ms",
		"LEVY_AUTHORIZE_RESERVATION_TTL":          "500us",
		"LEVY_AUTHORIZE_SAFE_REQUESTS_PER_MINUTE": "-3",
	}))
	for _, want := range []string{"authorize.timeout", "authorize.reservationTtl", "authorize.safeRequestsPerMinute"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
	if _, err := Load("", env(map[string]string{"LEVY_AUTHORIZE_SAFE_REQUESTS_PER_MINUTE": "lots"})); err == nil || !strings.Contains(err.Error(), "LEVY_AUTHORIZE_SAFE_REQUESTS_PER_MINUTE") {
		t.Errorf("a non-number safe capacity: %v", err)
	}
}
