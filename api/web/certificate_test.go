package web_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/cunzheng/cunzheng/evidence/certificate"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// needTools skips when poppler-utils or zbar-tools are missing, except in
// CI, where they must be installed.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "" {
				t.Skipf("%s not found (apt-get install poppler-utils zbar-tools); CI must have it", tool)
			}
			t.Fatalf("CI is set but %s is missing", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

func postCertificate(t *testing.T, n *testNode, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(n.srv.URL+"/v1/certificate", contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

// TestCertificateEndToEnd asks the node for a certificate, reads it with
// independent tools (pdftotext, pdfdetach, pdftoppm + zbarimg), verifies the
// attached receipt, and follows the QR code to the page, which verifies the
// record.
func TestCertificateEndToEnd(t *testing.T) {
	needTools(t, "pdftotext", "pdfdetach", "pdftoppm", "zbarimg")
	if _, err := os.Stat(certificate.DefaultFontPath); err != nil && os.Getenv("CI") == "" {
		t.Skipf("CJK font %s missing (apt-get install fonts-droid-fallback)", certificate.DefaultFontPath)
	}
	f := newFixture(t)
	receipt, _ := os.ReadFile(f.receipt)
	resp, pdf := postCertificate(t, f.node, "text/plain", receipt)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Fatalf("certificate: %d %s %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), pdf)
	}
	dir := t.TempDir()
	pdfPath := writeFile(t, dir, "cert.pdf", pdf)
	writeFile(t, artifactsDir(t), "certificate.pdf", pdf)

	text := run(t, "pdftotext", "-layout", pdfPath, "-")
	digest := sha256.Sum256(evidenceBytes)
	hexDigest := strings.ToLower(strings.TrimSpace(string(bytesHex(digest[:]))))
	for _, want := range []string{
		"存证证书", "Evidence Preservation Certificate", f.recordID, "SHA-256", hexDigest,
		"存证时间", "(UTC+08:00)", "no trusted timestamp token yet", "未附可信时间戳",
		"可信时间戳序列号", "none (no trusted timestamp token yet)",
		"日志索引", "区块高度", "申请人", "contract.txt", "(2026)京0491民初123号",
		"court.example", f.node.fp.String(), "不证明文件内容的真实性", "it does not prove its content true",
		"1/1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("certificate text lacks %q:\n%s", want, text)
		}
	}

	// The attached receipt is the one submitted, and it verifies.
	run(t, "pdfdetach", "-saveall", "-o", dir, pdfPath)
	attached, err := os.ReadFile(filepath.Join(dir, f.recordID+".receipt"))
	if err != nil {
		t.Fatalf("no attached receipt: %v (pdfdetach -list: %s)", err, run(t, "pdfdetach", "-list", pdfPath))
	}
	if !bytes.Equal(attached, receipt) {
		t.Fatal("attached receipt differs from the receipt certified")
	}
	if res := verify.Receipt(attached, digest[:], f.node.fp); !res.OK() {
		t.Fatalf("attached receipt does not verify: %s", res.Reason)
	}

	// The QR code decodes to the verification link with record, digest and
	// checkpoint hash.
	run(t, "pdftoppm", "-png", "-r", "200", "-f", "1", "-l", "1", pdfPath, filepath.Join(dir, "page"))
	pages, _ := filepath.Glob(filepath.Join(dir, "page*.png"))
	if len(pages) == 0 {
		t.Fatal("pdftoppm wrote no page")
	}
	qr := strings.TrimSpace(run(t, "zbarimg", "--quiet", "--raw", pages[0]))
	u, err := url.Parse(qr)
	if err != nil || u.Path != "/verify" || "http://"+u.Host != f.node.srv.URL {
		t.Fatalf("QR code %q is not a link to this node's /verify", qr)
	}
	q := u.Query()
	if q.Get("record") != f.recordID || q.Get("sha256") != hexDigest || len(q.Get("checkpoint")) != 64 {
		t.Fatalf("QR code %q lacks the record, digest or checkpoint hash", qr)
	}

	// Following it, the page verifies that record.
	ctx := newTab(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(qr)); err != nil {
		t.Fatal(err)
	}
	v, page := waitVerdict(t, ctx)
	if v != "record" {
		t.Fatalf("QR link verdict %q; page:\n%s", v, page)
	}
	mustContain(t, page, "存证记录核验通过", f.recordID, "inclusion proof", "checkpoint signatures vs policy")
	screenshot(t, ctx, "qr-record")
	// Then the judge chooses the file: verified.
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.CSS("#evidence"), []string{f.evidence})); err != nil {
		t.Fatal(err)
	}
	if v, page := waitVerdict(t, ctx); v != "verified" {
		t.Fatalf("file after QR link: verdict %q; page:\n%s", v, page)
	}
}

func bytesHex(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

func TestCertificateRefusals(t *testing.T) {
	f := newFixture(t)
	foreign, _ := os.ReadFile(f.foreign)
	receipt, _ := os.ReadFile(f.receipt)
	corrupt := bytes.Replace(receipt, []byte("leaf "), []byte("leaf AAAA"), 1)
	cases := []struct {
		name, ctype string
		body        []byte
		status      int
		code        string
	}{
		{"other network", "text/plain", foreign, 422, "not_verified"},
		{"corrupt receipt", "text/plain", corrupt, 422, "not_verified"},
		{"not a receipt", "text/plain", []byte("hello"), 400, "bad_receipt"},
		{"json body", "application/json", []byte(`{"receipt":"x"}`), 400, "bad_receipt"},
		{"too large", "text/plain", bytes.Repeat([]byte("a"), 2<<20), 400, "bad_receipt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := postCertificate(t, f.node, c.ctype, c.body)
			if resp.StatusCode != c.status || !bytes.Contains(body, []byte(`"`+c.code+`"`)) {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, c.status, c.code)
			}
		})
	}
}
