package witness

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Limits of a log list file.
const (
	MaxLogListSize = 256 << 10
	MaxLogs        = 256
	MaxLogKeys     = 64
)

// ParseLogList strictly parses the list of logs a witness cosigns: blocks
// of a "log ORIGIN [THRESHOLD]" line followed by one "key VKEY" line per
// signed-note verifier key of that log. Blank lines and lines starting
// with "#" are comments. THRESHOLD (default 1) is how many distinct keys
// must sign. For example:
//
//	# the other court's evidence network: 2 of its 3 institutions
//	log evidence.other-court.example/v1 2
//	key court.other.example+1a2b3c4d+AU...
//	key notary.other.example+5e6f7a8b+AY...
//	key tsc.other.example+9c0d1e2f+AZ...
func ParseLogList(data []byte) ([]Log, error) {
	if len(data) > MaxLogListSize {
		return nil, fmt.Errorf("%w: log list is %d bytes, limit %d", ErrMalformed, len(data), MaxLogListSize)
	}
	type block struct {
		origin    string
		threshold int
		keys      []note.Verifier
	}
	var blocks []*block
	origins := map[string]bool{}
	for n, line := range strings.Split(string(data), "\n") {
		where := fmt.Sprintf("log list line %d", n+1)
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, " ")
		switch {
		case f[0] == "log" && (len(f) == 2 || len(f) == 3):
			if len(blocks) == MaxLogs {
				return nil, fmt.Errorf("%w: %s: more than %d logs", ErrMalformed, where, MaxLogs)
			}
			if f[1] == "" || strings.ContainsAny(f[1], "+\t") || origins[f[1]] {
				return nil, fmt.Errorf("%w: %s: bad or repeated origin %q", ErrMalformed, where, f[1])
			}
			b := &block{origin: f[1], threshold: 1}
			if len(f) == 3 {
				t, err := strconv.Atoi(f[2])
				if err != nil || t < 1 || t > MaxLogKeys || strconv.Itoa(t) != f[2] {
					return nil, fmt.Errorf("%w: %s: threshold %q", ErrMalformed, where, f[2])
				}
				b.threshold = t
			}
			origins[f[1]] = true
			blocks = append(blocks, b)
		case f[0] == "key" && len(f) == 2:
			if len(blocks) == 0 {
				return nil, fmt.Errorf("%w: %s: key before any log line", ErrMalformed, where)
			}
			b := blocks[len(blocks)-1]
			if len(b.keys) == MaxLogKeys {
				return nil, fmt.Errorf("%w: %s: more than %d keys", ErrMalformed, where, MaxLogKeys)
			}
			v, err := note.NewVerifier(f[1])
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, where, err)
			}
			for _, k := range b.keys {
				if k.Name() == v.Name() {
					return nil, fmt.Errorf("%w: %s: a second key named %q", ErrMalformed, where, v.Name())
				}
			}
			b.keys = append(b.keys, v)
		default:
			return nil, fmt.Errorf("%w: %s: want \"log ORIGIN [THRESHOLD]\" or \"key VKEY\"", ErrMalformed, where)
		}
	}
	out := make([]Log, 0, len(blocks))
	for _, b := range blocks {
		if len(b.keys) < b.threshold {
			return nil, fmt.Errorf("%w: log %s has %d keys, fewer than its threshold %d", ErrMalformed, b.origin, len(b.keys), b.threshold)
		}
		out = append(out, Log{Origin: b.origin, Verifiers: note.VerifierList(b.keys...), Threshold: b.threshold})
	}
	return out, nil
}
