package web_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/cunzheng/cunzheng/api/web"
	"github.com/cunzheng/cunzheng/evidence"
)

// chromiumPath is Debian's chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// browser is one headless Chromium shared by the tests of this package;
// each test gets its own tab in its own browser context (fresh storage).
var browser struct {
	once   sync.Once
	ctx    context.Context
	cancel func()
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if browser.cancel != nil {
		browser.cancel()
	}
	os.Exit(code)
}

// needBrowser skips when there is no Chromium — except in CI (CI set),
// where the browser tests must run.
func needBrowser(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("browser test skipped: %s not found (apt-get install chromium); CI must have it", chromiumPath)
		}
		t.Fatalf("CI is set but %s is missing: %v", chromiumPath, err)
	}
}

// newTab opens a tab in a fresh browser context of the shared browser.
func newTab(t testing.TB) context.Context {
	t.Helper()
	needBrowser(t)
	browser.once.Do(func() {
		dir, err := os.MkdirTemp("", "cunzheng-chromium-")
		if err != nil {
			browser.err = err
			return
		}
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
			chromedp.ExecPath(chromiumPath),
			chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.Flag("disable-extensions", true),
			chromedp.Flag("disable-background-timer-throttling", true),
			chromedp.Flag("disable-renderer-backgrounding", true),
			chromedp.WindowSize(1280, 1000),
			chromedp.UserDataDir(dir),
		)
		ctx, cancelCtx := chromedp.NewContext(alloc)
		browser.ctx = ctx
		browser.cancel = func() {
			cancelCtx()
			cancelAlloc()
			os.RemoveAll(dir)
		}
		browser.err = chromedp.Do(ctx) // start the browser
	})
	if browser.err != nil {
		t.Fatalf("start %s: %v", chromiumPath, browser.err)
	}
	ctx, cancel := chromedp.NewContext(browser.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// artifactsDir is where screenshots go: $CUNZHENG_ARTIFACTS, or a
// directory that outlives the test run, logged.
func artifactsDir(t testing.TB) string {
	dir := os.Getenv("CUNZHENG_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "cunzheng-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(artifactsDir(t), name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// verdictTimeout bounds a wait for the page's verdict.
const verdictTimeout = 30 * time.Second

// waitVerdict waits until the page shows a verdict and returns it with the
// result's text.
func waitVerdict(t testing.TB, ctx context.Context) (string, string) {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Poll[string](`document.querySelector('#result').dataset.verdict ||
		(/^(出错|Error)/.test(document.querySelector('#status').textContent) ? 'error: ' + document.querySelector('#status').textContent : '')`,
		chromedp.WithPollingTimeout(verdictTimeout), chromedp.WithPollingInterval(10*time.Millisecond)))
	if err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#status').textContent`))
		t.Fatalf("no verdict: %v (status line: %q)", err, status)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#result').innerText`))
	if err != nil {
		t.Fatal(err)
	}
	return v, text
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustContain(t testing.TB, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("page does not show %q; it shows:\n%s", w, text)
		}
	}
}

func mustNotContain(t testing.TB, text string, bad ...string) {
	t.Helper()
	for _, w := range bad {
		if strings.Contains(text, w) {
			t.Errorf("page shows %q but must not; it shows:\n%s", w, text)
		}
	}
}

// fixture is one node with a preserved file, and the files a judge might be
// handed.
type fixture struct {
	node                           *testNode
	dir                            string
	evidence, tampered, unknown    string // file paths
	receipt, wrongReceipt, foreign string // receipt paths
	recordID                       string
	index                          uint64
}

// evidenceBytes is the preserved file's content.
var evidenceBytes = []byte("劳动合同 — labour contract, signed 2026-03-01, page 1 of 1\n")

func newFixture(t *testing.T) *fixture {
	t.Helper()
	n := newTestNode(t, "court.example")
	other := newTestNode(t, "other-court.example")
	dir := t.TempDir()
	key := n.register()
	receipt, idx := n.preserve(key, evidenceBytes, evidenceOpening())
	second := []byte("another preserved file")
	wrong, _ := n.preserve(key, second, evidenceOpening())
	foreignKey := other.register()
	foreign, _ := other.preserve(foreignKey, evidenceBytes, evidenceOpening())
	tampered := append([]byte(nil), evidenceBytes...)
	tampered[len(tampered)-2] ^= 0x01 // one byte changed
	return &fixture{
		node: n, dir: dir,
		evidence:     writeFile(t, dir, "contract.txt", evidenceBytes),
		tampered:     writeFile(t, dir, "contract-tampered.txt", tampered),
		unknown:      writeFile(t, dir, "unknown.txt", []byte("never preserved")),
		receipt:      writeFile(t, dir, "contract.receipt", receipt),
		wrongReceipt: writeFile(t, dir, "other-file.receipt", wrong),
		foreign:      writeFile(t, dir, "other-network.receipt", foreign),
		recordID:     n.recordID(idx),
		index:        idx,
	}
}

func evidenceOpening() evidence.Opening {
	return evidence.Opening{FileName: "contract.txt", CaseRef: "(2026)京0491民初123号", Title: "labour contract"}
}

func TestVerifyPageLookup(t *testing.T) {
	f := newFixture(t)
	ctx := newTab(t)
	fp := f.node.fp.String()
	cases := []struct {
		name, file, verdict string
		want, bad           []string
	}{
		{"verified", f.evidence, "verified",
			[]string{"核验通过", f.recordID, "court.example", fp, "digest matches", "inclusion proof", "checkpoint signatures vs policy",
				"未附可信时间戳", "(UTC+08:00)", "区块高度"},
			[]string{"未上链", "不一致", "未通过"}},
		{"tampered", f.tampered, "notfound", []string{"未上链", fp}, []string{"核验通过"}},
		{"unknown", f.unknown, "notfound", []string{"未上链", fp}, []string{"核验通过"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := chromedp.Do(ctx,
				chromedp.Navigate(f.node.srv.URL+"/verify"),
				chromedp.SetUploadFiles(chromedp.CSS("#evidence"), []string{c.file}),
			); err != nil {
				t.Fatal(err)
			}
			v, text := waitVerdict(t, ctx)
			if v != c.verdict {
				t.Errorf("verdict %q, want %q; page:\n%s", v, c.verdict, text)
			}
			mustContain(t, text, c.want...)
			mustNotContain(t, text, c.bad...)
			screenshot(t, ctx, "lookup-"+c.name)
		})
	}
}

func TestVerifyPageReceipt(t *testing.T) {
	f := newFixture(t)
	ctx := newTab(t)
	cases := []struct {
		name, file, receipt, verdict string
		want                         []string
	}{
		{"verified", f.evidence, f.receipt, "verified",
			[]string{"核验通过", f.recordID, "contract.txt", "(2026)京0491民初123号", "submission signature", "metadata opening"}},
		{"tampered", f.tampered, f.receipt, "mismatch", []string{"不一致", "digest matches", "文件与存证记录不一致"}},
		{"wrong-receipt", f.evidence, f.wrongReceipt, "mismatch", []string{"不一致", "receipt preserves"}},
		{"other-network", f.evidence, f.foreign, "mismatch", []string{"不一致", "存证证明无效", "not the pinned genesis"}},
		{"committed", f.evidence, committedReceipt(t, f), "committed",
			[]string{"已提交，尚未最终确认", "cunzheng receipt refresh", f.recordID, "领导节点接收时间", "待最终确认"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := chromedp.Do(ctx,
				chromedp.Navigate(f.node.srv.URL+"/verify"),
				chromedp.Click(chromedp.CSS("#mode-receipt")),
				chromedp.SetUploadFiles(chromedp.CSS("#receipt"), []string{c.receipt}),
				chromedp.SetUploadFiles(chromedp.CSS("#evidence"), []string{c.file}),
			); err != nil {
				t.Fatal(err)
			}
			v, text := waitVerdict(t, ctx)
			if v != c.verdict {
				t.Errorf("verdict %q, want %q; page:\n%s", v, c.verdict, text)
			}
			mustContain(t, text, c.want...)
			if c.verdict != "verified" {
				mustNotContain(t, text, "核验通过")
			}
			screenshot(t, ctx, "receipt-"+c.name)
		})
	}
}

// committedReceipt is the fixture's receipt in its committed form: what
// submit answers before a final checkpoint covers the record.
func committedReceipt(t *testing.T, f *fixture) string {
	t.Helper()
	data, err := os.ReadFile(f.receipt)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := evidence.ParseReceipt(data)
	if err != nil {
		t.Fatal(err)
	}
	idx := f.index
	rc.Committed, rc.Proof, rc.Timestamps = &idx, nil, nil
	return writeFile(t, f.dir, "committed.receipt", rc.Marshal())
}

func TestVerifyPageLanguageSwitch(t *testing.T) {
	f := newFixture(t)
	ctx := newTab(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(f.node.srv.URL+"/verify"),
		chromedp.SetUploadFiles(chromedp.CSS("#evidence"), []string{f.evidence}),
	); err != nil {
		t.Fatal(err)
	}
	if v, _ := waitVerdict(t, ctx); v != "verified" {
		t.Fatalf("verdict %q", v)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#lang"))); err != nil {
		t.Fatal(err)
	}
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	lang, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.lang`))
	if lang != "en" {
		t.Errorf("html lang = %q after switching to English", lang)
	}
	mustContain(t, text, "Evidence verification", "Verified", "Record ID", "Preservation time",
		"no trusted timestamp token yet", "Signing institutions", "Genesis fingerprint (pinned)", "中文")
	mustNotContain(t, text, "证据文件", "区块高度")
	screenshot(t, ctx, "lookup-verified-en")
	// And back.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#lang"))); err != nil {
		t.Fatal(err)
	}
	text, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	mustContain(t, text, "存证核验", "核验通过", "区块高度", "English")
}

// TestVerifyPageKeyboard uses only the keyboard: Tab to the language
// button, Enter to switch; Tab to the file input, Space to open the file
// chooser (intercepted and answered as a person would), and the verdict
// arrives and takes focus.
func TestVerifyPageKeyboard(t *testing.T) {
	f := newFixture(t)
	ctx := newTab(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(f.node.srv.URL+"/verify")); err != nil {
		t.Fatal(err)
	}
	active := func() string {
		id, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ''`))
		return id
	}
	tabTo := func(id string) {
		t.Helper()
		for range 12 {
			if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
				t.Fatal(err)
			}
			if active() == id {
				return
			}
		}
		t.Fatalf("Tab never reached #%s", id)
	}
	tabTo("lang")
	visible, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.activeElement).outlineStyle`))
	if visible == "none" {
		t.Errorf("focused language button has no visible focus outline")
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	if lang, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.lang`)); lang != "en" {
		t.Fatalf("Enter on the language button: lang = %q", lang)
	}
	if _, err := chromedp.Call(ctx, page.SetInterceptFileChooserDialog, page.SetInterceptFileChooserDialogParams{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	tabTo("evidence")
	opened, err := chromedp.Run(ctx, chromedp.WaitEvent(page.FileChooserOpened, nil, chromedp.KeyEvent(" ")))
	if err != nil {
		t.Fatalf("Space on the file input opened no file chooser: %v", err)
	}
	if _, err := chromedp.Call(ctx, dom.SetFileInputFiles, dom.SetFileInputFilesParams{
		Files: []string{f.evidence}, BackendNodeID: opened.BackendNodeID}); err != nil {
		t.Fatal(err)
	}
	v, text := waitVerdict(t, ctx)
	if v != "verified" {
		t.Fatalf("verdict %q; page:\n%s", v, text)
	}
	mustContain(t, text, "Verified", f.recordID)
	if id := active(); id != "result" {
		t.Errorf("focus after the verdict is on #%s, want the result", id)
	}
	screenshot(t, ctx, "keyboard-verified-en")
}

// TestOfflinePage opens the self-contained page from file:// with every
// network request blocked and checks that it verifies from the receipt and
// that it made no request at all.
func TestOfflinePage(t *testing.T) {
	f := newFixture(t)
	net, err := web.NetworkFromManifestFile(f.node.mfile)
	if err != nil {
		t.Fatal(err)
	}
	html, err := web.OfflinePage(net)
	if err != nil {
		t.Fatal(err)
	}
	pagePath := writeFile(t, f.dir, "verify.html", html)
	ctx := newTab(t)
	var mu sync.Mutex
	var requests []string
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requests = append(requests, e.Request.URL)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: []*network.BlockPattern{
		{URLPattern: "http://*:*/*", Block: true}, {URLPattern: "https://*:*/*", Block: true},
		{URLPattern: "ws://*:*/*", Block: true}, {URLPattern: "wss://*:*/*", Block: true},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{
		Offline: true, DownloadThroughput: -1, UploadThroughput: -1}); err != nil {
		t.Fatal(err)
	}
	f.node.srv.Close() // and nothing to reach anyway
	cases := []struct {
		name, file, receipt, verdict string
		want                         []string
	}{
		{"verified", f.evidence, f.receipt, "verified", []string{"核验通过", f.recordID, "court.example", f.node.fp.String()}},
		{"tampered", f.tampered, f.receipt, "mismatch", []string{"不一致"}},
		{"other-network", f.evidence, f.foreign, "mismatch", []string{"不一致", "not the pinned genesis"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := chromedp.Do(ctx,
				chromedp.Navigate("file://"+pagePath),
				chromedp.SetUploadFiles(chromedp.CSS("#receipt"), []string{c.receipt}),
				chromedp.SetUploadFiles(chromedp.CSS("#evidence"), []string{c.file}),
			); err != nil {
				t.Fatal(err)
			}
			v, text := waitVerdict(t, ctx)
			if v != c.verdict {
				t.Errorf("verdict %q, want %q; page:\n%s", v, c.verdict, text)
			}
			mustContain(t, text, c.want...)
			screenshot(t, ctx, "offline-"+c.name)
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for _, u := range requests {
		if !strings.HasPrefix(u, "file://") && !strings.HasPrefix(u, "data:") {
			t.Errorf("offline page requested %s", u)
		}
	}
}
