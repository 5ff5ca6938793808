package node

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is a node's configuration file: `key = value` lines, `#` comments.
// Relative paths are relative to the node directory. Every key may be
// overridden by an environment variable CUNZHENG_<KEY> (upper case), e.g.
// CUNZHENG_LISTEN=127.0.0.1:9090.
type Config struct {
	Name            string        // institution key name
	Role            string        // court, notary, time-service, appraisal, observer
	Listen          string        // HTTP address
	Genesis         string        // genesis manifest file
	NoteKey         string        // checkpoint signing key file
	APITokenFile    string        // bearer token file for receipt reads
	DataDir         string        // parent of the per-network data directory
	BatchMaxRecords int           // records per block at most
	BatchInterval   time.Duration // wait this long to fill a block
	DiskHeadroom    uint64        // refuse submissions (507) below this many free bytes
	LogLevel        string        // debug, info, warn, error
	P2PListen       string        // libp2p listen multiaddr
	P2PKey          string        // libp2p identity key file
	PSKFile         string        // optional private-network pre-shared key file ("" = none)
	// ManifestChain is an optional manifest chain file (from `cunzheng
	// member add`) for a member added after genesis ("" = none).
	ManifestChain string
	// SnapshotEntries: the raft log is compacted behind a snapshot every
	// this many applied entries (0 = the raft package's default).
	SnapshotEntries uint64
	// WitnessLogs is a log list file (chain/witness.ParseLogList) of other
	// logs this node witnesses at POST /add-checkpoint ("" = not a witness).
	WitnessLogs string
	// WitnessKey is the witness's Ed25519 key file and WitnessName its
	// cosignature key name; used only when WitnessLogs is set.
	WitnessKey  string
	WitnessName string
	// ReceiptDeadline: how long a submit waits for its final, timestamped
	// receipt before answering with a committed one.
	ReceiptDeadline time.Duration
	// Time service only: the RFC 3161 authority's certificate chain (PEM,
	// signing certificate first) and key, the SNTP reference its clock is
	// checked against ("" = trust the local clock), the largest
	// disagreement at which it still stamps, and how often an unchanged
	// checkpoint is stamped again.
	TSACert, TSAKey string
	TSAReference    string
	TSAMaxSkew      time.Duration
	TSARestamp      time.Duration
}

// Defaults.
const (
	DefaultListen       = "127.0.0.1:8080"
	DefaultP2PListen    = "/ip4/127.0.0.1/tcp/4001"
	DefaultDiskHeadroom = 256 << 20
	// MaxConfigSize bounds a configuration file.
	MaxConfigSize = 64 << 10
)

func defaultConfig() Config {
	return Config{
		Listen: DefaultListen, Genesis: "genesis.json", NoteKey: "note.key",
		APITokenFile: "api.token", DataDir: "data", BatchMaxRecords: 4096,
		BatchInterval: 2 * time.Millisecond, DiskHeadroom: DefaultDiskHeadroom, LogLevel: "info",
		P2PListen: DefaultP2PListen, P2PKey: "p2p.key", WitnessKey: "witness.key",
		ReceiptDeadline: 2 * time.Second, TSACert: "tsa.crt", TSAKey: "tsa.key",
		TSAMaxSkew: time.Second, TSARestamp: 10 * time.Minute,
	}
}

// ParseConfig strictly parses a configuration file: unknown keys, repeated
// keys and bad values are errors naming the line. env supplies overrides
// (nil = none).
func ParseConfig(data []byte, env func(string) string) (*Config, error) {
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("config: file is %d bytes, limit %d", len(data), MaxConfigSize)
	}
	c := defaultConfig()
	seen := map[string]bool{}
	set := func(line int, key, val string) error {
		where := fmt.Sprintf("config line %d: %s", line, key)
		if line == 0 {
			where = "config: environment CUNZHENG_" + strings.ToUpper(key)
		}
		var err error
		switch key {
		case "name":
			c.Name = val
		case "role":
			c.Role = val
		case "listen":
			c.Listen = val
		case "genesis":
			c.Genesis = val
		case "note_key":
			c.NoteKey = val
		case "api_token_file":
			c.APITokenFile = val
		case "data_dir":
			c.DataDir = val
		case "batch_max_records":
			c.BatchMaxRecords, err = strconv.Atoi(val)
			if err == nil && (c.BatchMaxRecords < 1 || c.BatchMaxRecords > 100000) {
				err = fmt.Errorf("want 1..100000")
			}
		case "batch_interval":
			c.BatchInterval, err = time.ParseDuration(val)
			if err == nil && (c.BatchInterval <= 0 || c.BatchInterval > time.Second) {
				err = fmt.Errorf("want a duration in (0, 1s]")
			}
		case "disk_headroom":
			c.DiskHeadroom, err = parseBytes(val)
		case "p2p_listen":
			c.P2PListen = val
		case "p2p_key":
			c.P2PKey = val
		case "psk_file":
			c.PSKFile = val
		case "manifest_chain":
			c.ManifestChain = val
		case "raft_snapshot_entries":
			c.SnapshotEntries, err = strconv.ParseUint(val, 10, 32)
			if err == nil && c.SnapshotEntries < 10 {
				err = fmt.Errorf("want at least 10")
			}
		case "witness_logs":
			c.WitnessLogs = val
		case "witness_key":
			c.WitnessKey = val
		case "witness_name":
			c.WitnessName = val
		case "receipt_deadline":
			c.ReceiptDeadline, err = time.ParseDuration(val)
			if err == nil && (c.ReceiptDeadline <= 0 || c.ReceiptDeadline > time.Minute) {
				err = fmt.Errorf("want a duration in (0, 1m]")
			}
		case "tsa_cert":
			c.TSACert = val
		case "tsa_key":
			c.TSAKey = val
		case "tsa_reference":
			c.TSAReference = val
			if v, ok := strings.CutPrefix(val, "sntp://"); val != "" && (!ok || !strings.Contains(v, ":")) {
				err = fmt.Errorf("want sntp://host:port or empty")
			}
		case "tsa_max_skew":
			c.TSAMaxSkew, err = time.ParseDuration(val)
			if err == nil && (c.TSAMaxSkew <= 0 || c.TSAMaxSkew > time.Minute) {
				err = fmt.Errorf("want a duration in (0, 1m]")
			}
		case "tsa_restamp_interval":
			c.TSARestamp, err = time.ParseDuration(val)
			if err == nil && c.TSARestamp < time.Second {
				err = fmt.Errorf("want at least 1s")
			}
		case "log_level":
			switch val {
			case "debug", "info", "warn", "error":
			default:
				err = fmt.Errorf("want debug, info, warn or error")
			}
			c.LogLevel = val
		default:
			return fmt.Errorf("%s: unknown key", where)
		}
		if err != nil {
			return fmt.Errorf("%s: bad value %q: %v", where, val, err)
		}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("config line %d: want key = value", n)
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if uq, err := strconv.Unquote(val); err == nil && strings.HasPrefix(val, `"`) {
			val = uq
		}
		if seen[key] {
			return nil, fmt.Errorf("config line %d: %s set twice", n, key)
		}
		seen[key] = true
		if err := set(n, key, val); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if env != nil {
		for _, key := range []string{"name", "role", "listen", "genesis", "note_key", "api_token_file", "data_dir", "batch_max_records", "batch_interval", "disk_headroom", "log_level", "p2p_listen", "p2p_key", "psk_file", "raft_snapshot_entries", "manifest_chain", "receipt_deadline", "tsa_cert", "tsa_key", "tsa_reference", "tsa_max_skew", "tsa_restamp_interval", "witness_logs", "witness_key", "witness_name"} {
			if v := env("CUNZHENG_" + strings.ToUpper(key)); v != "" {
				if err := set(0, key, v); err != nil {
					return nil, err
				}
			}
		}
	}
	if c.Name == "" || c.Role == "" {
		return nil, fmt.Errorf("config: name and role are required")
	}
	if c.WitnessLogs != "" && (c.WitnessKey == "" || c.WitnessName == "") {
		return nil, fmt.Errorf("config: witness_logs needs witness_key and witness_name")
	}
	return &c, nil
}

func parseBytes(v string) (uint64, error) {
	mult := uint64(1)
	for _, u := range []struct {
		suffix string
		m      uint64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if s, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = s, u.m
			break
		}
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil || n > (1<<63)/mult {
		return 0, fmt.Errorf("want a size like 256MiB")
	}
	return n * mult, nil
}

// LoadConfig reads dir/node.conf with environment overrides.
func LoadConfig(dir string) (*Config, error) {
	data, err := os.ReadFile(ConfigPath(dir))
	if err != nil {
		return nil, fmt.Errorf("read config: %w (run `cunzheng init --dir %s` first)", err, dir)
	}
	return ParseConfig(data, os.Getenv)
}

const configTemplate = `# cunzheng node configuration (written by cunzheng init).
# Lines are "key = value"; "#" starts a comment. Relative paths are relative
# to this directory. Any key can be overridden by an environment variable
# CUNZHENG_<KEY>, e.g. CUNZHENG_LISTEN=127.0.0.1:9090.

# This institution's name: its signed-note key name (no spaces or "+").
name = %s

# Its role: court, notary, time-service, appraisal or observer.
role = %s

# HTTP API address. Keep it on loopback unless a TLS proxy fronts it.
listen = %s

# The genesis manifest of the network. Its SHA-256 fingerprint is what
# verifiers pin; the node's data lives under data_dir/<fingerprint>/.
genesis = genesis.json

# The Ed25519 signed-note key that signs checkpoints (keep it 0600).
note_key = note.key

# Bearer token that authorises reading receipts (they name submitters).
api_token_file = api.token

# Where the Pebble log store lives.
data_dir = data

# A block is cut after batch_max_records records or batch_interval,
# whichever comes first. While one block syncs, the next one fills.
batch_max_records = 4096
batch_interval = 2ms

# Below this much free disk the node refuses submissions with HTTP 507
# instead of running the disk full. Submissions resume when space returns.
disk_headroom = 256MiB

# debug, info, warn or error.
log_level = info

# Peer-to-peer (libp2p) address where the other institutions' nodes reach
# this one, and this node's libp2p identity. Only peers listed in the
# network's manifest may connect.
p2p_listen = %s
p2p_key = p2p.key

# Optional private-network pre-shared key file (32 random bytes, hex), the
# same on every node of the network. Empty: none.
psk_file =

# A member added after genesis starts with the manifest chain file that
# "cunzheng member add" wrote (genesis stays the network's genesis).
# Empty: the node is a founding member, or its log already holds the chain.
manifest_chain =

# The raft log is compacted behind a snapshot every this many entries; a
# node that falls further behind catches up by block sync.
raft_snapshot_entries = 10000

# A submit answers with the final, timestamped receipt when it is ready
# within this deadline, else with a committed receipt (HTTP 202) that
# "cunzheng receipt refresh" upgrades later.
receipt_deadline = 2s

# Time service only. The RFC 3161 timestamp authority inside this node:
# its certificate chain (PEM, signing certificate first; the manifest pins
# it) and key. The authority refuses to stamp while its clock is more than
# tsa_max_skew off the reference (sntp://host:123, e.g. the national time
# service; empty trusts the local clock). An unchanged checkpoint is
# stamped again every tsa_restamp_interval, so an idle network still
# proves it was alive.
tsa_cert = tsa.crt
tsa_key = tsa.key
tsa_reference =
tsa_max_skew = 1s
tsa_restamp_interval = 10m

# This node can witness other courts' logs (C2SP tlog-witness): it then
# serves POST /add-checkpoint and cosigns their checkpoints with the key
# below after checking each is consistent with the last it cosigned. The
# witness's state lives in data_dir/witness; never delete it. witness_logs
# names a file of "log ORIGIN [THRESHOLD]" lines, each followed by
# "key VKEY" lines (the log's signed-note keys). Empty: not a witness.
# Other networks list this witness with the key in witness.pub.
witness_logs =
witness_key = witness.key
witness_name = %s
`
