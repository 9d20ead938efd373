package migrate

import (
	"testing"
	"testing/fstest"
)

func TestList(t *testing.T) {
	ms, err := List(fstest.MapFS{
		"m/0010_b.sql":   {Data: []byte("B")},
		"m/0002_a.sql":   {Data: []byte("A")},
		"m/README.md":    {Data: []byte("x")},
		"m/sub/0001.sql": {Data: []byte("nested, ignored")},
	}, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Version != 2 || ms[0].SQL != "A" || ms[1].Version != 10 || ms[1].Name != "0010_b.sql" {
		t.Errorf("List = %+v", ms)
	}
	for name, fs := range map[string]fstest.MapFS{
		"no number": {"m/init.sql": {}},
		"zero":      {"m/0000_x.sql": {}},
		"duplicate": {"m/0001_a.sql": {}, "m/1_b.sql": {}},
		"no dir":    {},
	} {
		if _, err := List(fs, "m"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
