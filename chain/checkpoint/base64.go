package checkpoint

import (
	"encoding/base64"
	"errors"
)

// errNotCanonical marks base64 text that decodes but is not the one
// canonical encoding of its bytes.
var errNotCanonical = errors.New("not canonical base64")

// DecodeBase64 decodes standard, padded base64 and accepts only the one
// canonical encoding of the bytes. Go's decoder on its own skips '\r' and
// '\n' inside the text, and Strict only rejects non-zero padding bits; a
// strict parser must refuse both, so that text which verifies is exactly
// the text that was signed.
func DecodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, errNotCanonical
	}
	return b, nil
}
