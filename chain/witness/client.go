package witness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// Client asks witnesses to cosign checkpoints. Its zero value uses
// http.DefaultClient; the caller bounds each call with its context.
type Client struct {
	HTTP *http.Client
}

// maxAttempts bounds the requests of one AddCheckpoint: the first, a
// resend from the size a 409 names, and one more should the witness move
// again in between.
const maxAttempts = 3

// StatusError is a witness's answer other than 200 or a usable 409.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("witness answered %d: %s", e.Code, e.Message)
}

// AddCheckpoint sends signed (a checkpoint signed by the log) to the
// witness at baseURL with a consistency proof from oldSize, the size the
// caller believes the witness last cosigned, and returns the witness's
// cosignature lines. proof returns the consistency proof from a given old
// size to the checkpoint's size (nil for 0). On 409 it resends with a
// proof from the size the witness names.
//
// witnessSize is the size the witness is known to hold afterwards (the
// checkpoint's on success, the one a 409 named otherwise), or -1 if
// unknown: the caller remembers it for the next checkpoint.
func (c *Client) AddCheckpoint(ctx context.Context, baseURL string, oldSize int64, proof func(ctx context.Context, oldSize int64) (tlog.TreeProof, error), signed []byte) (cosigs []byte, witnessSize int64, err error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	size, err := noteSize(signed)
	if err != nil {
		return nil, -1, err
	}
	witnessSize = -1
	for range maxAttempts {
		var p tlog.TreeProof
		if oldSize > 0 {
			if p, err = proof(ctx, oldSize); err != nil {
				return nil, witnessSize, fmt.Errorf("witness %s: consistency proof from %d: %w", baseURL, oldSize, err)
			}
		}
		body := (&Request{OldSize: oldSize, Proof: p, Checkpoint: signed}).Format()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(baseURL, "/")+"/add-checkpoint", bytes.NewReader(body))
		if err != nil {
			return nil, witnessSize, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, witnessSize, fmt.Errorf("witness %s: %w", baseURL, err)
		}
		text, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
		resp.Body.Close()
		if err != nil {
			return nil, witnessSize, fmt.Errorf("witness %s: %w", baseURL, err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			lines, err := ParseCosignatures(text)
			if err != nil {
				return nil, witnessSize, fmt.Errorf("witness %s: %w", baseURL, err)
			}
			return []byte(strings.Join(lines, "")), size, nil
		case http.StatusConflict:
			known, err := parseSize(resp.Header.Get("Content-Type"), text)
			if err != nil {
				return nil, witnessSize, fmt.Errorf("witness %s: 409: %w", baseURL, err)
			}
			witnessSize = known
			if known > size {
				return nil, witnessSize, fmt.Errorf("witness %s holds size %d, beyond this checkpoint's %d", baseURL, known, size)
			}
			if known == oldSize {
				// Same size, different root: the witness has seen another tree.
				return nil, witnessSize, &StatusError{Code: resp.StatusCode, Message: "witness holds another root for size " + strconv.FormatInt(known, 10)}
			}
			oldSize = known
		default:
			msg := strings.TrimSpace(string(text))
			if len(msg) > 200 {
				msg = msg[:200]
			}
			return nil, witnessSize, fmt.Errorf("witness %s: %w", baseURL, &StatusError{Code: resp.StatusCode, Message: msg})
		}
	}
	return nil, witnessSize, fmt.Errorf("witness %s: still conflicting after %d attempts", baseURL, maxAttempts)
}

// parseSize parses a text/x.tlog.size body: a decimal size and a newline.
func parseSize(contentType string, text []byte) (int64, error) {
	if contentType != "text/x.tlog.size" {
		return 0, fmt.Errorf("%w: content type %q, want text/x.tlog.size", ErrMalformed, contentType)
	}
	s, ok := strings.CutSuffix(string(text), "\n")
	n, err := strconv.ParseInt(s, 10, 64)
	if !ok || err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("%w: size %q", ErrMalformed, text)
	}
	return n, nil
}

// noteSize reads the tree size of a signed checkpoint without verifying it.
func noteSize(signed []byte) (int64, error) {
	lines := strings.SplitN(string(signed), "\n", 3)
	if len(lines) < 3 {
		return 0, fmt.Errorf("%w: checkpoint", ErrMalformed)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return 0, fmt.Errorf("%w: checkpoint size %q", ErrMalformed, lines[1])
	}
	return n, nil
}
