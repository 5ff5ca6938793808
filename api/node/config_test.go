package node

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseConfigTemplate(t *testing.T) {
	c, err := ParseConfig(fmt.Appendf(nil, configTemplate, "court.example", "court", "127.0.0.1:9000", DefaultP2PListen, "court.example/witness"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "court.example" || c.Listen != "127.0.0.1:9000" || c.BatchInterval != 2*time.Millisecond || c.DiskHeadroom != 256<<20 {
		t.Fatalf("%+v", c)
	}
	env := map[string]string{"CUNZHENG_LISTEN": "127.0.0.1:1", "CUNZHENG_DISK_HEADROOM": "1GiB"}
	c, err = ParseConfig(fmt.Appendf(nil, configTemplate, "a", "court", "x", DefaultP2PListen, "a/witness"), func(k string) string { return env[k] })
	if err != nil || c.Listen != "127.0.0.1:1" || c.DiskHeadroom != 1<<30 {
		t.Fatalf("env override: %+v %v", c, err)
	}
}

func TestParseConfigRejects(t *testing.T) {
	base := "name = a\nrole = court\n"
	for _, tc := range []struct{ name, text, want string }{
		{"unknown key", base + "colour = red\n", "line 3: colour: unknown key"},
		{"twice", base + "listen = a\nlisten = b\n", "line 4: listen set twice"},
		{"no equals", base + "listen\n", "line 3: want key = value"},
		{"bad batch", base + "batch_max_records = 0\n", "batch_max_records: bad value"},
		{"bad interval", base + "batch_interval = 5s\n", "batch_interval: bad value"},
		{"bad headroom", base + "disk_headroom = lots\n", "disk_headroom: bad value"},
		{"bad level", base + "log_level = loud\n", "log_level: bad value"},
		{"missing name", "role = court\n", "name and role are required"},
		{"witness without a name", base + "witness_logs = logs.txt\nwitness_name =\n", "witness_logs needs witness_key and witness_name"},
		{"too large", strings.Repeat("#", MaxConfigSize+1), "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.text), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(fmt.Appendf(nil, configTemplate, "court.example", "court", "127.0.0.1:8080", DefaultP2PListen, "court.example/witness"))
	f.Add([]byte("name = \"a b\"\nrole = court\ndisk_headroom = 9GiB\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data, nil)
		if err == nil && (c.Name == "" || c.BatchMaxRecords < 1 || c.BatchInterval <= 0) {
			t.Fatalf("accepted an invalid config: %+v", c)
		}
	})
}
