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
// final, with their roles from the manifest in force.
func signerLines(res *verify.Result, zh bool) []string {
	roles := map[string]evidence.Role{}
	if res.Manifest != nil {
		for _, m := range res.Manifest.Members {
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

// render lays the certificate out. font is nil for English-only.
func render(receipt []byte, res *verify.Result, qrText string, font []byte, now time.Time) ([]byte, error) {
	zh := font != nil
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCreationDate(now)
	pdf.SetModificationDate(now)
	pdf.SetCreator("cunzheng", false)
	pdf.SetTitle("存证证书 Evidence Preservation Certificate "+res.RecordID, true)
	pdf.SetMargins(18, 18, 18)
	pdf.SetAutoPageBreak(true, 22)
	pdf.AliasNbPages("{nb}")
	family, mono := "Helvetica", "Courier"
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	if zh {
		pdf.AddUTF8FontFromBytes("cjk", "", font)
		family, mono = "cjk", "cjk"
		tr = func(s string) string { return s }
	}
	bi := func(zhText, en string) string {
		if zh {
			return zhText + " " + en
		}
		return en
	}
	pdf.SetFooterFunc(func() {
		pdf.SetY(-15)
		pdf.SetFont(family, "", 8)
		pdf.SetTextColor(80, 80, 80)
		txt := fmt.Sprintf("Page %d/{nb}", pdf.PageNo())
		if zh {
			txt = fmt.Sprintf("第 %d/{nb} 页 · Page %d/{nb}", pdf.PageNo(), pdf.PageNo())
		}
		pdf.CellFormat(0, 5, tr(txt+" · "+res.RecordID), "", 0, "C", false, 0, "")
	})
	pdf.AddPage()
	pdf.SetTextColor(20, 20, 20)
	pdf.SetFont(family, "", 20)
	pdf.CellFormat(0, 11, tr(bi("存证证书", "")), "", 1, "C", false, 0, "")
	if !zh {
		pdf.CellFormat(0, 11, "Evidence Preservation Certificate", "", 1, "C", false, 0, "")
	} else {
		pdf.SetFont(family, "", 13)
		pdf.CellFormat(0, 8, "Evidence Preservation Certificate", "", 1, "C", false, 0, "")
	}
	pdf.Ln(3)

	const labelW = 52.0
	row := func(label, value string, monoValue bool) {
		y := pdf.GetY()
		x := pdf.GetX()
		pdf.SetFont(family, "", 9.5)
		pdf.SetTextColor(70, 70, 70)
		pdf.MultiCell(labelW, 5.2, tr(label), "", "L", false)
		yl := pdf.GetY()
		pdf.SetXY(x+labelW, y)
		f := family
		if monoValue {
			f = mono
		}
		pdf.SetFont(f, "", 10)
		pdf.SetTextColor(15, 15, 15)
		pdf.MultiCell(0, 5.2, tr(value), "", "L", false)
		if yl > pdf.GetY() {
			pdf.SetY(yl)
		}
		pdf.Ln(1.2)
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
	row(bi("存证编号", "Record ID"), res.RecordID, true)
	row(bi("哈希算法", "Digest algorithm"), "SHA-256", false)
	row(bi("哈希值", "Digest"), digest, true)
	row(bi("存证时间", "Preservation time"), timeLine(res.LeaderTime)+"\n"+
		bi("领导节点接收时间；未附可信时间戳", "leader's received time; no trusted timestamp token yet"), false)
	row(bi("可信时间戳序列号", "Timestamp token serial"), bi("无（尚未附可信时间戳）", "none (no trusted timestamp token yet)"), false)
	row(bi("日志索引", "Log index"), fmt.Sprintf("%d", res.Index), false)
	row(bi("区块高度", "Block height"), fmt.Sprintf("%d", res.Height), false)
	row(bi("申请人（已遮蔽）", "Applicant (masked)"), MaskedApplicant(sub), true)
	row(bi("文件名", "File name"), fileName, false)
	row(bi("文件大小", "File size"), fmt.Sprintf("%d %s", sub.Size, bi("字节", "bytes")), false)
	row(bi("案号", "Case reference"), caseRef, false)
	row(bi("签名机构", "Signing institutions"), strings.Join(signerLines(res, zh), "\n"), false)
	row(bi("网络", "Network"), res.Origin, false)
	row(bi("网络指纹（创世）", "Network fingerprint (genesis)"), res.Network, true)
	row(bi("检查点", "Checkpoint"), fmt.Sprintf("%s %d · SHA-256 %s", bi("树大小", "tree size"), res.TreeSize, CheckpointHash(res)), true)
	var checks []string
	for _, c := range res.Checks {
		mark := "OK"
		if !c.OK {
			mark = "--"
		}
		checks = append(checks, mark+"  "+c.Name)
	}
	row(bi("核验项", "Checks"), strings.Join(checks, "\n"), false)
	row(bi("出具时间", "Issued"), timeLine(now), false)

	pdf.Ln(2)
	t := timeLine(res.LeaderTime)
	pdf.SetFont(family, "", 10.5)
	pdf.SetTextColor(15, 15, 15)
	if zh {
		pdf.MultiCell(0, 6, "本证书证明该文件自 "+t+" 起存在且未被改动；它不证明文件内容的真实性。", "", "L", false)
	}
	pdf.MultiCell(0, 6, tr("This certificate proves the file existed unchanged since "+t+"; it does not prove its content true."), "", "L", false)
	pdf.Ln(2)

	png, err := qrcode.Encode(qrText, qrcode.Medium, 512)
	if err != nil {
		return nil, fmt.Errorf("certificate: QR code: %w", err)
	}
	pdf.RegisterImageOptionsReader("qr", fpdf.ImageOptions{ImageType: "PNG"}, bytes.NewReader(png))
	const qrSize = 42.0
	if pdf.GetY()+qrSize+10 > 297-22 {
		pdf.AddPage()
	}
	y := pdf.GetY()
	pdf.ImageOptions("qr", 18, y, qrSize, qrSize, false, fpdf.ImageOptions{ImageType: "PNG"}, 0, "")
	pdf.SetXY(18+qrSize+4, y+2)
	pdf.SetFont(family, "", 9)
	pdf.MultiCell(0, 4.8, tr(bi("扫码或访问下列网址核验（需提供证据文件）；本证书内附存证回执，可离线核验：",
		"Scan or open the link to verify (with the evidence file); the receipt is attached to this PDF for offline verification:")), "", "L", false)
	pdf.SetX(18 + qrSize + 4)
	pdf.SetFont(mono, "", 7.5)
	pdf.MultiCell(0, 4, tr(qrText), "", "L", false)
	pdf.SetX(18 + qrSize + 4)
	pdf.SetFont(family, "", 9)
	pdf.MultiCell(0, 4.8, tr(bi("离线核验：cunzheng verify --receipt 附件 --genesis 网络指纹 文件",
		"Offline: cunzheng verify --receipt ATTACHMENT --genesis FINGERPRINT FILE")), "", "L", false)

	pdf.SetAttachments([]fpdf.Attachment{{
		Content:     receipt,
		Filename:    AttachmentName(res),
		Description: "cunzheng receipt " + res.RecordID,
	}})
	var out bytes.Buffer
	if err := pdf.Output(&out); err != nil {
		return nil, fmt.Errorf("certificate: render PDF: %w", err)
	}
	return out.Bytes(), nil
}

// AttachmentName is the file name of the receipt attached to a certificate.
func AttachmentName(res *verify.Result) string {
	return res.RecordID + ".receipt"
}
