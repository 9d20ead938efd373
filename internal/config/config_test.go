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
