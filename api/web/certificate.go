package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/cunzheng/cunzheng/api"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/certificate"
)

// certificateHandler answers POST /v1/certificate: the body is a receipt
// file (the holder already has it); the node verifies it against its own
// genesis and returns the certificate PDF. Nothing is stored.
type certificateHandler struct {
	opts Options
}

// errBadCertificateRequest marks a request body that is not a receipt.
var errBadCertificateRequest = errors.New("bad certificate request")

// readCertificateRequest reads the receipt from a certificate request: a
// text/plain (or untyped) body of at most evidence.MaxReceiptSize bytes.
func readCertificateRequest(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "text/plain" && mt != "application/octet-stream") {
			return nil, fmt.Errorf("%w: send the receipt file as Content-Type: text/plain", errBadCertificateRequest)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, evidence.MaxReceiptSize))
	if err != nil {
		return nil, fmt.Errorf("%w: receipt body: %v (limit %d bytes)", errBadCertificateRequest, err, evidence.MaxReceiptSize)
	}
	if _, err := evidence.ParseReceipt(body); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadCertificateRequest, err)
	}
	return body, nil
}

func (c *certificateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	receipt, err := readCertificateRequest(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_receipt", err.Error())
		return
	}
	base := c.opts.PublicURL
	if base == "" {
		base = requestBase(r)
	}
	cert, err := certificate.Render(receipt, certificate.Options{
		Pinned: c.opts.Network.Fingerprint, FontPath: c.opts.FontPath, BaseURL: base, Now: c.opts.Now,
	})
	if errors.Is(err, certificate.ErrNotVerified) {
		writeError(w, http.StatusUnprocessableEntity, "not_verified", err.Error())
		return
	}
	if err != nil {
		c.opts.Logger.Error("render certificate", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error; see the node's log")
		return
	}
	if cert.Warning != "" {
		c.opts.Logger.Warn("certificate", "warning", cert.Warning)
	}
	h := w.Header()
	h.Set("Content-Type", "application/pdf")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": cert.Result.RecordID + ".pdf"}))
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(cert.PDF)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.Error{Err: api.ErrorBody{Code: code, Message: msg}})
}
