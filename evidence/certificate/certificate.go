// Package certificate renders the 存证证书 (evidence preservation
// certificate): a PDF, bilingual where a CJK font is available, that states
// what a verified receipt proves, carries the receipt itself as an attached
// file, and prints a QR code with the record ID, digest, checkpoint hash and
// the verification URL.
//
// Render verifies the receipt first (evidence/verify, against the pinned
// genesis) and refuses to certify one that does not verify. It reads
// nothing but the font file named in Options.
package certificate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// DefaultFontPath is the CJK TrueType font of Debian's fonts-droid-fallback
// package.
const DefaultFontPath = "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"

// MaxFontSize bounds the font file read (DroidSansFallbackFull is 4 MB).
const MaxFontSize = 64 << 20

// ErrNotVerified is returned when the receipt does not verify; nothing is
// rendered.
var ErrNotVerified = errors.New("certificate: receipt does not verify")

// Options says what to check and how to render.
type Options struct {
	// Pinned is the genesis fingerprint the receipt must verify against.
	Pinned evidence.Fingerprint
	// FileSHA256, when set, is the digest of the evidence file, which must
	// match the receipt. When nil only the receipt is checked.
	FileSHA256 []byte
	// FontPath is a TrueType font with CJK glyphs ("" = DefaultFontPath).
	// When it cannot be read the certificate is English-only and Warning
	// says so.
	FontPath string
	// BaseURL is the node URL the QR code's verification link points to,
	// e.g. https://court.example ("" = a cunzheng: link without a host).
	BaseURL string
	// Now is the issue time printed on the certificate (nil = time.Now).
	Now func() time.Time
}

// Certificate is a rendered certificate.
type Certificate struct {
	PDF         []byte
	Result      *verify.Result // the verification it certifies
	QR          string         // the QR code's text
	EnglishOnly bool
	Warning     string // non-empty when the CJK font was not usable
}

// China Standard Time, shown beside UTC (DESIGN §5).
var cst = time.FixedZone("UTC+08:00", 8*3600)

// Render verifies receipt and renders its certificate.
func Render(receipt []byte, opts Options) (*Certificate, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	digest := opts.FileSHA256
	if digest == nil {
		digest = receiptDigest(receipt)
	}
	res := verify.Receipt(receipt, digest, opts.Pinned)
	if !res.OK() {
		return &Certificate{Result: res}, fmt.Errorf("%w: %s", ErrNotVerified, res.Reason)
	}
	c := &Certificate{Result: res, QR: QRText(opts.BaseURL, res)}
	fontPath := opts.FontPath
	if fontPath == "" {
		fontPath = DefaultFontPath
	}
	font, err := readFont(fontPath)
	if err != nil {
		c.EnglishOnly = true
		c.Warning = fmt.Sprintf("no CJK font (%v): the certificate is English-only; install Debian's fonts-droid-fallback or pass a TrueType CJK font", err)
	}
	pdf, err := render(receipt, res, c.QR, font, opts.Now())
	if err != nil {
		return nil, err
	}
	c.PDF = pdf
	return c, nil
}

// receiptDigest returns the primary digest a receipt preserves, or nil when
// the receipt cannot be read (verification then reports why).
func receiptDigest(receipt []byte) []byte {
	rc, err := evidence.ParseReceipt(receipt)
	if err != nil {
		return nil
	}
	sub, err := evidence.ParseSubmission(rc.Submission)
	if err != nil {
		return nil
	}
	return sub.Primary()
}

func readFont(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxFontSize {
		return nil, fmt.Errorf("font %s is %d bytes, limit %d", path, fi.Size(), MaxFontSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 4 || (string(b[:4]) != "\x00\x01\x00\x00" && string(b[:4]) != "true") {
		return nil, fmt.Errorf("font %s is not a TrueType font", path)
	}
	return b, nil
}

// CheckpointHash is the SHA-256 of the final checkpoint's body (origin,
// tree size, root): the same bytes on every honest replica.
func CheckpointHash(res *verify.Result) string {
	s := sha256.Sum256([]byte(res.Checkpoint))
	return hex.EncodeToString(s[:])
}

// QRText is the QR code's content: a link to the verification page that
// names the record, the evidence digest and the checkpoint hash, so it is
// useful read offline too.
func QRText(baseURL string, res *verify.Result) string {
	q := url.Values{}
	q.Set("record", res.RecordID)
	q.Set("sha256", strings.TrimPrefix(res.Digest, "sha256:"))
	q.Set("checkpoint", CheckpointHash(res))
	base := strings.TrimRight(baseURL, "/")
	if base == "" {
		return "cunzheng:verify?" + q.Encode()
	}
	return base + "/verify?" + q.Encode()
}

// MaskedApplicant names the submitter without identifying them: the first
// and last four hex digits of the SHA-256 of their public key.
func MaskedApplicant(sub *evidence.Submission) string {
	if sub == nil {
		return ""
	}
	s := sha256.Sum256(sub.Submitter.Key)
	h := hex.EncodeToString(s[:])
	return fmt.Sprintf("%s key SHA-256 %s…%s", sub.Submitter.Alg, h[:4], h[len(h)-4:])
}

func roleZH(r evidence.Role) string {
	switch r {
	case evidence.RoleCourt:
		return "法院"
	case evidence.RoleNotary:
		return "公证处"
	case evidence.RoleTimeService:
		return "授时中心"
	case evidence.RoleAppraisal:
		return "司法鉴定中心"
	}
	return "二级节点"
}

// signerLines names the institutions whose signatures made the checkpoint
// final, with their roles from the manifest version it met (in an extended
// receipt, possibly earlier than the version in force).
func signerLines(res *verify.Result, zh bool) []string {
	roles := map[string]evidence.Role{}
	m := res.CheckpointManifest
	if m == nil {
		m = res.Manifest
	}
	if m != nil {
		for _, m := range m.Members {
			roles[m.Name] = m.Role
		}
	}
	var out []string
	for _, s := range res.Signers {
		r := roles[s]
		if zh {
			out = append(out, fmt.Sprintf("%s（%s，%s）", s, roleZH(r), r))
		} else {
			out = append(out, fmt.Sprintf("%s (%s)", s, r))
		}
	}
	return out
}

func timeLine(t time.Time) string {
	const layout = "2006-01-02 15:04:05.000"
	return t.In(cst).Format(layout) + " (UTC+08:00) / " + t.UTC().Format(layout) + " UTC"
}

// latin reports whether r prints in the PDF core fonts (Windows-1252).
func latin(r rune) bool {
	return r < 0x100 || strings.ContainsRune("—–…‘’“”•€", r)
}

// page wraps fpdf with text that mixes scripts: Latin runs in the core
// fonts (Helvetica, Courier), other runs in the CJK TrueType font, which
// (like Droid Sans Fallback) may lack Latin glyphs.
type page struct {
	*fpdf.Fpdf
	cjk bool // the CJK font is loaded
	tr  func(string) string
}

// write flows s at the current position, wrapping at the margins.
func (p *page) write(s string, size, lineH float64, mono bool) {
	runs := splitRuns(s)
	for _, r := range runs {
		if r.latin || !p.cjk {
			if mono {
				p.SetFont("Courier", "", size)
			} else {
				p.SetFont("Helvetica", "", size)
			}
			p.Write(lineH, p.tr(r.text))
			continue
		}
		p.SetFont("cjk", "", size)
		p.Write(lineH, r.text)
	}
}

type run struct {
	text  string
	latin bool
}

func splitRuns(s string) []run {
	var out []run
	for _, r := range s {
		l := latin(r) || r == '\n'
		if n := len(out); n > 0 && out[n-1].latin == l {
			out[n-1].text += string(r)
			continue
		}
		out = append(out, run{string(r), l})
	}
	return out
}

// render lays the certificate out on one A4 page. font is nil for
// English-only.
func render(receipt []byte, res *verify.Result, qrText string, font []byte, now time.Time) ([]byte, error) {
	zh := font != nil
	f := fpdf.New("P", "mm", "A4", "")
	p := &page{Fpdf: f, cjk: zh, tr: f.UnicodeTranslatorFromDescriptor("")}
	p.SetCreationDate(now)
	p.SetModificationDate(now)
	p.SetCreator("cunzheng", false)
	p.SetTitle("Evidence Preservation Certificate "+res.RecordID, false)
	const margin = 16.0
	p.SetMargins(margin, 14, margin)
	p.SetAutoPageBreak(true, 18)
	p.AliasNbPages("{nb}")
	if zh {
		p.AddUTF8FontFromBytes("cjk", "", font)
	}
	bi := func(zhText, en string) string {
		if zh {
			return zhText + " " + en
		}
		return en
	}
	p.SetFooterFunc(func() {
		p.SetY(-13)
		p.SetLeftMargin(margin)
		p.SetX(margin)
		p.SetTextColor(80, 80, 80)
		txt := fmt.Sprintf("Page %d/{nb}", p.PageNo())
		if zh {
			txt = fmt.Sprintf("第 %d/{nb} 页 · Page %d/{nb}", p.PageNo(), p.PageNo())
		}
		p.write(txt+" · "+res.RecordID+" · "+bi("出具时间", "issued")+" "+timeLine(now), 7.5, 4, false)
	})
	p.AddPage()
	p.SetTextColor(20, 20, 20)
	if zh {
		p.SetFont("cjk", "", 20)
		p.CellFormat(0, 10, "存证证书", "", 1, "C", false, 0, "")
	}
	p.SetFont("Helvetica", "B", 14)
	p.CellFormat(0, 8, "Evidence Preservation Certificate", "", 1, "C", false, 0, "")
	p.Ln(2)
	p.SetDrawColor(120, 120, 120)
	p.Line(margin, p.GetY(), 210-margin, p.GetY())
	p.Ln(2)

	const labelW = 46.0
	row := func(zhLabel, enLabel, value string, monoValue bool) {
		y := p.GetY()
		p.SetLeftMargin(margin)
		p.SetRightMargin(210 - margin - labelW + 2)
		p.SetXY(margin, y)
		p.SetTextColor(60, 60, 60)
		if zh {
			p.write(zhLabel+"\n", 9, 4.2, false)
		}
		p.write(enLabel, 7.5, 3.6, false)
		yl := p.GetY() + 3.6
		p.SetLeftMargin(margin + labelW)
		p.SetRightMargin(margin)
		p.SetXY(margin+labelW, y)
		p.SetTextColor(10, 10, 10)
		p.write(value, 9.5, 4.6, monoValue)
		yv := p.GetY() + 4.6
		p.SetLeftMargin(margin)
		p.SetXY(margin, max(yl, yv)+1.6)
	}
	sub := res.Submission
	notDisclosed := bi("未披露", "not disclosed")
	fileName, caseRef := notDisclosed, notDisclosed
	if op := res.Opening; op != nil {
		if op.FileName != "" {
			fileName = op.FileName
		}
		if op.CaseRef != "" {
			caseRef = op.CaseRef
		}
	}
	digest := strings.TrimPrefix(res.Digest, "sha256:")
	var passed []string
	for _, c := range res.Checks {
		if c.OK {
			passed = append(passed, c.Name)
		}
	}
	row("存证编号", "Record ID", res.RecordID, true)
	row("哈希算法与哈希值", "Digest algorithm and value", "SHA-256\n"+digest, true)
	preserved := res.LeaderTime
	if tok := res.Timestamp; tok != nil {
		// The token's time is the claim; the leader's clock is secondary.
		preserved = tok.Time
		row("存证时间", "Preservation time", timeLine(tok.Time)+"\n"+
			bi("可信时间戳（RFC 3161），授时机构 ", "(trusted timestamp, RFC 3161, by ")+tok.Authority+bi("", ")"), false)
		row("可信时间戳序列号", "Timestamp token serial", tok.Serial+"\n"+tok.Subject, true)
		row("领导节点接收时间", "Leader's received time", timeLine(res.LeaderTime), false)
	} else {
		row("存证时间", "Preservation time", timeLine(res.LeaderTime)+"\n"+
			bi("领导节点接收时间；未附可信时间戳", "(leader's received time; no trusted timestamp token yet)"), false)
		row("可信时间戳序列号", "Timestamp token serial", bi("无（尚未附可信时间戳）", "none (no trusted timestamp token yet)"), false)
	}
	row("日志索引 / 区块高度", "Log index / block height", fmt.Sprintf("%d / %d", res.Index, res.Height), false)
	row("申请人（已遮蔽）", "Applicant (masked)", MaskedApplicant(sub), true)
	row("文件名 / 文件大小", "File name / size", fmt.Sprintf("%s / %d %s", fileName, sub.Size, bi("字节", "bytes")), false)
	row("案号", "Case reference", caseRef, false)
	row("签名机构", "Signing institutions", strings.Join(signerLines(res, zh), "\n"), false)
	row("网络与指纹", "Network and fingerprint", res.Origin+"\n"+res.Network, true)
	row("检查点", "Checkpoint", fmt.Sprintf("%s %d, SHA-256\n%s", bi("树大小", "tree size"), res.TreeSize, CheckpointHash(res)), true)
	row("核验项", "Checks passed", fmt.Sprintf("%d/%d: %s", len(passed), len(res.Checks), strings.Join(passed, ", ")), false)

	p.Ln(1)
	p.Line(margin, p.GetY(), 210-margin, p.GetY())
	p.Ln(2.5)
	t := timeLine(preserved)
	p.SetTextColor(10, 10, 10)
	if zh {
		p.write("本证书证明该文件自 "+t+" 起存在且未被改动；它不证明文件内容的真实性。\n", 10.5, 5.4, false)
	}
	p.write("This certificate proves the file existed unchanged since "+t+"; it does not prove its content true.\n", 10, 5, false)
	p.Ln(3)

	png, err := qrcode.Encode(qrText, qrcode.Medium, 512)
	if err != nil {
		return nil, fmt.Errorf("certificate: QR code: %w", err)
	}
	p.RegisterImageOptionsReader("qr", fpdf.ImageOptions{ImageType: "PNG"}, bytes.NewReader(png))
	const qrSize = 40.0
	if p.GetY()+qrSize > 297-18 {
		p.AddPage()
	}
	y := p.GetY()
	p.ImageOptions("qr", margin, y, qrSize, qrSize, false, fpdf.ImageOptions{ImageType: "PNG"}, 0, "")
	textX := margin + qrSize + 4
	p.SetLeftMargin(textX)
	p.SetXY(textX, y+1)
	p.SetTextColor(30, 30, 30)
	p.write(bi("扫码或打开链接核验（需提供证据文件）。本 PDF 内附存证回执，可离线核验。",
		"Scan or open the link to verify (with the evidence file). The receipt is attached to this PDF for offline verification.")+"\n", 8.5, 4.2, false)
	p.write(qrText+"\n", 7.5, 3.8, true)
	p.write("cunzheng verify --receipt "+AttachmentName(res)+" --genesis "+res.Network[:16]+"… FILE", 7.5, 3.8, true)
	p.SetLeftMargin(margin)

	p.SetAttachments([]fpdf.Attachment{{
		Content:     receipt,
		Filename:    AttachmentName(res),
		Description: "cunzheng receipt " + res.RecordID,
	}})
	var out bytes.Buffer
	if err := p.Output(&out); err != nil {
		return nil, fmt.Errorf("certificate: render PDF: %w", err)
	}
	return out.Bytes(), nil
}

// AttachmentName is the file name of the receipt attached to a certificate.
func AttachmentName(res *verify.Result) string {
	return res.RecordID + ".receipt"
}
