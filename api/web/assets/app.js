// cunzheng verification page. The evidence file is hashed here, in chunks
// (bounded memory, never uploaded); the verdict comes from the Go verifier
// compiled to WebAssembly, checked against the genesis fingerprint pinned in
// this page. The node is asked only "which records carry this digest?".
(function () {
  'use strict';
  var body = document.body;
  var cfg = {
    mode: body.dataset.mode,            // "node" or "offline"
    network: body.dataset.network,      // pinned genesis fingerprint
    origin: body.dataset.origin,
    wasm: body.dataset.wasm,            // URL, or "" when inlined
    lookup: body.dataset.lookup || ''   // URL prefix of GET /v1/lookup/{sha256}
  };
  var CHUNK = 8 << 20;

  var T = {
    zh: {
      title: '存证核验', skip: '跳到文件选择', 'network.h': '受信任的网络', 'network.origin': '网络名称',
      'network.fp': '创世指纹（已固定）', 'network.members': '机构',
      'network.hint': '核验结果由本页面内置的核验程序依据上面固定的创世指纹独立计算，不依赖服务器的结论。',
      'mode.legend': '核验方式', 'mode.lookup': '按文件在链上查询', 'mode.receipt': '文件 + 存证回执（可离线）',
      'evidence.label': '证据文件', 'evidence.hint': '选择或拖入文件。文件只在本机计算哈希值，不会上传。',
      'receipt.label': '存证回执', 'receipt.hint': '存证时取得的回执文件（cunzheng-receipt/v1）。',
      go: '核验', progress: '正在计算哈希值',
      footer: '本页面依据 RFC 6962 包含证明与机构签名独立核验；存证仅证明文件自存证时间起未被改动，不证明其内容真实。',
      'role.court': '法院', 'role.notary': '公证处', 'role.time-service': '授时中心', 'role.appraisal': '司法鉴定中心', 'role.observer': '二级节点',
      verified: '核验通过', notfound: '未上链', mismatch: '不一致', recordok: '存证记录核验通过',
      'verified.p': '该文件自下列存证时间起未被改动。这不证明文件内容真实。',
      'notfound.p': '节点报告：本网络没有哈希值为下列值的存证记录。',
      'mismatch.p': '该文件与存证记录不一致（文件已被改动，或不是回执所对应的文件）。',
      'invalid.p': '存证证明无效，不能据此认定：',
      'recordok.p': '二维码所指的存证记录已核验。请选择证据文件以核对文件本身。',
      'expect.differs': '所选文件的哈希值与二维码中的不同。',
      recordid: '存证编号', time: '存证时间', timenote: '领导节点接收时间；未附可信时间戳',
      tokennote: '可信时间戳（RFC 3161），授时机构', leadertime: '领导节点接收时间',
      committed: '已提交，尚未最终确认',
      'committed.p': '该记录已提交并持久保存，但尚无最终检查点覆盖它（也无可信时间戳），本回执暂不能单独作为证明。请运行 cunzheng receipt refresh 获取最终回执。',
      token: '可信时间戳序列号', tokennone: '无（尚未附可信时间戳）', index: '日志索引', height: '区块高度',
      signers: '签名机构', digest: '哈希值 (SHA-256)', network: '网络指纹', kind: '证据类型与大小',
      filename: '文件名', caseref: '案号', titlef: '标题', url: '网址', records: '记录数',
      checks: '核验项', pass: '通过', fail: '未通过', skipped: '未检查', pending: '待最终确认',
      hashing: '正在计算哈希值…', looking: '正在查询节点…', verifying: '正在核验证明…',
      loading: '正在加载核验程序…', needreceipt: '请同时选择存证回执。', needfile: '请选择证据文件。',
      neterr: '无法连接节点：', err: '出错：', bytes: '字节', elapsed: '用时',
      'check.receipt format': '回执格式', 'check.manifest': '网络清单', 'check.digest matches': '哈希值一致',
      'check.submission signature': '提交签名', 'check.metadata opening': '元数据披露', 'check.leaf': '叶子记录',
      'check.inclusion proof': '包含证明', 'check.checkpoint signatures vs policy': '检查点签名与策略',
      'check.timestamp token': '可信时间戳', 'check.consistency to newer checkpoint': '与更新检查点的一致性',
      extended: '已延伸至更新的最终检查点', treesize: '树大小'
    },
    en: {
      title: 'Evidence verification', skip: 'Skip to file selection', 'network.h': 'Trusted network', 'network.origin': 'Network',
      'network.fp': 'Genesis fingerprint (pinned)', 'network.members': 'Institutions',
      'network.hint': 'The verdict is computed in this page by the built-in verifier against the pinned genesis fingerprint above, not taken from the server.',
      'mode.legend': 'How to verify', 'mode.lookup': 'Look the file up on the network', 'mode.receipt': 'File + receipt (works offline)',
      'evidence.label': 'Evidence file', 'evidence.hint': 'Choose or drop a file. It is hashed on this computer and never uploaded.',
      'receipt.label': 'Receipt', 'receipt.hint': 'The receipt file obtained at preservation (cunzheng-receipt/v1).',
      go: 'Verify', progress: 'Computing the hash',
      footer: 'Verified independently in this page from RFC 6962 inclusion proofs and institution signatures. Preservation proves the file existed unchanged since the time shown; it does not prove its content true.',
      'role.court': 'court', 'role.notary': 'notary office', 'role.time-service': 'time service', 'role.appraisal': 'appraisal centre', 'role.observer': 'verification-only node',
      verified: 'Verified', notfound: 'Not on chain', mismatch: 'Mismatch', recordok: 'Record verified',
      'verified.p': 'This file has existed unchanged since the preservation time below. This does not prove its content true.',
      'notfound.p': 'The node reports no preserved record on this network with the digest below.',
      'mismatch.p': 'This file does not match the preserved record (it was changed, or the receipt is for another file).',
      'invalid.p': 'The proof is not valid and proves nothing:',
      'recordok.p': 'The record named by the QR code is verified. Choose the evidence file to check the file itself.',
      'expect.differs': 'The chosen file\u2019s digest differs from the one in the QR code.',
      recordid: 'Record ID', time: 'Preservation time', timenote: 'leader\u2019s received time; no trusted timestamp token yet',
      tokennote: 'trusted timestamp (RFC 3161) by', leadertime: 'Leader\u2019s received time',
      committed: 'Committed, not yet final',
      'committed.p': 'The record is committed and durable, but no final checkpoint covers it yet (nor a trusted timestamp), so this receipt proves nothing on its own. Run cunzheng receipt refresh for the final receipt.',
      token: 'Timestamp token serial', tokennone: 'none (no trusted timestamp yet)', index: 'Log index', height: 'Block height',
      signers: 'Signing institutions', digest: 'Digest (SHA-256)', network: 'Network fingerprint', kind: 'Kind and size',
      filename: 'File name', caseref: 'Case reference', titlef: 'Title', url: 'URL', records: 'Records',
      checks: 'Checks', pass: 'pass', fail: 'FAIL', skipped: 'not checked', pending: 'pending',
      extended: 'Extended to a newer final checkpoint', treesize: 'tree size',
      hashing: 'Hashing the file\u2026', looking: 'Asking the node\u2026', verifying: 'Verifying the proof\u2026',
      loading: 'Loading the verifier\u2026', needreceipt: 'Choose the receipt file too.', needfile: 'Choose the evidence file.',
      neterr: 'Cannot reach the node: ', err: 'Error: ', bytes: 'bytes', elapsed: 'time taken'
    }
  };
  var lang = 'zh';
  try { if (localStorage.getItem('cunzheng.lang') === 'en') { lang = 'en'; } } catch (e) { /* file:// may forbid storage */ }
  function t(k) { var s = T[lang][k]; if (s === undefined && k.indexOf('check.') === 0) { return k.slice(6); } return s === undefined ? T.zh[k] || k : s; }

  var $ = function (id) { return document.getElementById(id); };
  var state = { last: null, expect: null };

  function applyLang() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    document.title = lang === 'zh' ? '存证核验 · Evidence verification' : 'Evidence verification · 存证核验';
    var nodes = document.querySelectorAll('[data-i18n]');
    for (var i = 0; i < nodes.length; i++) { nodes[i].textContent = t(nodes[i].dataset.i18n); }
    var b = $('lang');
    b.textContent = lang === 'zh' ? 'English' : '中文';
    b.lang = lang === 'zh' ? 'en' : 'zh-CN';
    b.setAttribute('aria-label', lang === 'zh' ? 'Switch to English' : '切换到中文');
    if (state.last) { render(state.last); }
  }
  $('lang').addEventListener('click', function () {
    lang = lang === 'zh' ? 'en' : 'zh';
    try { localStorage.setItem('cunzheng.lang', lang); } catch (e) { /* ignore */ }
    applyLang();
  });

  // --- the verifier (Go, WebAssembly) ---
  var verifier = null;
  function loadVerifier() {
    if (verifier) { return verifier; }
    verifier = new Promise(function (resolve, reject) {
      var go = new Go();
      window.cunzhengReady = resolve;
      var inst;
      if (cfg.wasm) {
        inst = WebAssembly.instantiateStreaming(fetch(cfg.wasm), go.importObject);
      } else {
        var bin = atob($('cz-wasm').dataset.b64);
        var bytes = new Uint8Array(bin.length);
        for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
        inst = WebAssembly.instantiate(bytes, go.importObject);
      }
      inst.then(function (r) { go.run(r.instance); }, reject);
    });
    return verifier;
  }
  loadVerifier();

  // --- incremental hashing: file.slice chunks into a WebAssembly SHA-256,
  // reading the next chunk while the current one is hashed ---
  function sha256File(file, onProgress) {
    return hashwasm.createSHA256().then(function (h) {
      h.init();
      var size = file.size;
      function read(off) { return off < size ? file.slice(off, Math.min(off + CHUNK, size)).arrayBuffer() : null; }
      function step(off, pending) {
        if (!pending) { return h.digest('hex'); }
        return pending.then(function (buf) {
          var next = read(off + CHUNK);
          h.update(new Uint8Array(buf));
          onProgress(Math.min(off + CHUNK, size), size);
          return step(off + CHUNK, next);
        });
      }
      return step(0, read(0));
    });
  }
  window.cunzhengSHA256File = sha256File; // used by the benchmark

  function setStatus(msg) { $('status').textContent = msg; }
  var lastProgress = 0;
  function progress(done, total) {
    var now = Date.now();
    if (done < total && now - lastProgress < 100) { return; }
    lastProgress = now;
    var pct = total ? Math.floor(done * 100 / total) : 100;
    $('progress').value = pct;
    $('progress-text').textContent = pct + '%';
  }

  function mode() { return cfg.mode === 'offline' || $('mode-receipt').checked ? 'receipt' : 'lookup'; }
  function syncMode() { $('receipt-field').hidden = mode() !== 'receipt'; }
  $('mode-lookup').addEventListener('change', syncMode);
  $('mode-receipt').addEventListener('change', syncMode);

  function readText(file) { return file.text(); }

  var running = 0;
  function run() {
    var file = $('evidence').files[0];
    var rfile = $('receipt').files[0];
    if (!file) { setStatus(t('needfile')); return; }
    if (mode() === 'receipt' && !rfile) { setStatus(t('needreceipt')); return; }
    var my = ++running;
    var started = performance.now();
    $('result').textContent = '';
    delete $('result').dataset.verdict;
    state.last = null;
    $('progress-wrap').hidden = false;
    progress(0, file.size);
    setStatus(t('hashing'));
    var digest;
    sha256File(file, progress).then(function (d) {
      digest = d;
      progress(file.size, file.size);
      setStatus(t('verifying'));
      return loadVerifier();
    }).then(function (v) {
      if (mode() === 'receipt') {
        return readText(rfile).then(function (text) {
          return { kind: 'receipt', digest: digest, file: file, res: JSON.parse(v.verifyReceipt(text, digest, cfg.network)) };
        });
      }
      setStatus(t('looking'));
      return fetch(cfg.lookup + digest, { headers: { Accept: 'application/json' } }).then(function (resp) {
        if (resp.status === 404) { return { kind: 'notfound', digest: digest, file: file }; }
        if (!resp.ok) { throw new Error('HTTP ' + resp.status); }
        return resp.text().then(function (text) {
          return { kind: 'lookup', digest: digest, file: file, res: JSON.parse(v.verifyLookup(text, digest, cfg.network)) };
        });
      }, function (e) { throw new Error(t('neterr') + e.message); });
    }).then(function (out) {
      if (my !== running) { return; }
      out.ms = Math.round(performance.now() - started);
      setStatus('');
      render(out);
      $('result').focus();
    }).catch(function (e) {
      if (my !== running) { return; }
      setStatus(t('err') + e.message);
    });
  }
  $('form').addEventListener('submit', function (e) { e.preventDefault(); run(); });
  $('evidence').addEventListener('change', function () { if (mode() === 'lookup' || $('receipt').files[0]) { run(); } });
  $('receipt').addEventListener('change', function () { if ($('evidence').files[0]) { run(); } });

  // Dropping a file onto a drop zone fills its input.
  ['drop', 'receipt-field'].forEach(function (id) {
    var zone = $(id), input = zone.querySelector('input[type=file]');
    zone.addEventListener('dragover', function (e) { e.preventDefault(); zone.classList.add('over'); });
    zone.addEventListener('dragleave', function () { zone.classList.remove('over'); });
    zone.addEventListener('drop', function (e) {
      e.preventDefault(); zone.classList.remove('over');
      if (e.dataTransfer.files.length) { input.files = e.dataTransfer.files; input.dispatchEvent(new Event('change')); }
    });
  });

  // --- rendering ---
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function pad(n, w) { n = String(n); while (n.length < (w || 2)) { n = '0' + n; } return n; }
  function fmt(d) {
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds()) + '.' + pad(d.getUTCMilliseconds(), 3);
  }
  function showTime(iso) {
    var d = new Date(iso);
    if (isNaN(d)) { return iso; }
    return fmt(new Date(d.getTime() + 8 * 3600 * 1000)) + ' (UTC+08:00) · ' + fmt(d) + ' UTC';
  }
  function verdictBox(cls, icon, word, para, extra) {
    var box = el('div', 'verdict ' + cls);
    var h = el('h2');
    h.appendChild(el('span', 'icon', icon)).setAttribute('aria-hidden', 'true');
    h.appendChild(el('span', 'word', word));
    box.appendChild(h);
    box.appendChild(el('p', '', para));
    if (extra) { box.appendChild(el('p', 'mono', extra)); }
    return box;
  }
  function rows(list) {
    var dl = el('dl', 'record');
    list.forEach(function (r) {
      if (r[1] === undefined || r[1] === '') { return; }
      dl.appendChild(el('dt', '', r[0]));
      var dd = el('dd', r[2] || '', r[1]);
      dl.appendChild(dd);
    });
    return dl;
  }
  // 存证时间 is the timestamp token's time when there is one; the leader's
  // received time is then secondary.
  function times(res) {
    var tok = res.timestamp;
    if (!tok) {
      return [[t('time'), showTime(res.leader_time) + ' — ' + t('timenote')], [t('token'), t('tokennone')]];
    }
    return [
      [t('time'), showTime(tok.time) + ' — ' + t('tokennote') + ' ' + tok.authority],
      [t('token'), tok.serial + ' · ' + tok.authority, 'mono'],
      [t('leadertime'), showTime(res.leader_time)]
    ];
  }
  function record(res, out) {
    var list = [
      [t('recordid'), res.record_id, 'mono'],
    ].concat(times(res), [
      [t('index'), String(res.index)],
      [t('height'), String(res.block_height)],
      [t('signers'), (res.signers || []).join(lang === 'zh' ? '、' : ', ')],
      [t('digest'), (res.digest || '').replace(/^sha256:/, ''), 'mono']
    ]);
    var x = res.extended;
    if (x) {
      list.push([t('extended'), t('treesize') + ' ' + x.tree_size + ' · ' + (x.signers || []).join(lang === 'zh' ? '、' : ', ')]);
    }
    if (res.kind) { list.push([t('kind'), res.kind + ', ' + res.size + ' ' + t('bytes')]); }
    var d = res.disclosed;
    if (d) {
      list.push([t('filename'), d.file_name]);
      list.push([t('caseref'), d.case_ref]);
      list.push([t('titlef'), d.title]);
      list.push([t('url'), d.url]);
    }
    list.push([t('network'), res.network, 'mono']);
    if (out && out.ms !== undefined) { list.push([t('elapsed'), out.ms + ' ms']); }
    return rows(list);
  }
  function checks(res) {
    var wrap = el('div');
    wrap.appendChild(el('h3', '', t('checks')));
    var ul = el('ul', 'checks');
    (res.checks || []).forEach(function (c) {
      var li = el('li');
      var skipped = !c.ok && /^not checked/.test(c.detail || '');
      var pending = !c.ok && /^committed at index/.test(c.detail || '');
      var mark = c.ok ? ['ok', '✓ ' + t('pass')] : skipped ? ['skip-c', '– ' + t('skipped')] :
        pending ? ['skip-c', '… ' + t('pending')] : ['fail', '✗ ' + t('fail')];
      li.appendChild(el('span', mark[0], mark[1]));
      li.appendChild(document.createTextNode(' ' + c.name + (lang === 'zh' ? '（' + t('check.' + c.name) + '）' : '')));
      if (c.detail) { li.appendChild(el('span', 'detail', c.detail)); }
      ul.appendChild(li);
    });
    wrap.appendChild(ul);
    return wrap;
  }

  function render(out) {
    state.last = out;
    var box = $('result');
    box.textContent = '';
    if (out.kind === 'notfound') {
      box.appendChild(verdictBox('v-notfound', '?', t('notfound') + ' · ' + (lang === 'zh' ? 'Not on chain' : '未上链'), t('notfound.p'), out.digest));
      box.appendChild(rows([[t('network'), cfg.network, 'mono']]));
      box.dataset.verdict = 'notfound';
      return;
    }
    var results = out.kind === 'receipt' ? [out.res] : (out.res.results || []);
    if (out.res.error) {
      box.appendChild(verdictBox('v-mismatch', '✗', t('mismatch') + ' · ' + (lang === 'zh' ? 'Mismatch' : '不一致'), t('invalid.p'), out.res.error));
      box.dataset.verdict = 'mismatch';
      return;
    }
    var ok = results.filter(function (r) { return r.verdict === 'verified'; });
    var expectBad = out.kind !== 'record' && state.expect && state.expect !== out.digest;
    if (ok.length && !expectBad) {
      var word = out.kind === 'record' ? t('recordok') : t('verified') + ' · ' + (lang === 'zh' ? 'Verified' : '核验通过');
      box.appendChild(verdictBox('v-verified', '✓', word, out.kind === 'record' ? t('recordok.p') : t('verified.p')));
      ok.forEach(function (r) { box.appendChild(record(r, out)); box.appendChild(checks(r)); });
      box.dataset.verdict = out.kind === 'record' ? 'record' : 'verified';
      return;
    }
    var pending = results.filter(function (r) { return r.verdict === 'committed'; });
    if (pending.length && !expectBad) {
      box.appendChild(verdictBox('v-committed', '…', t('committed') + ' · ' + (lang === 'zh' ? 'Committed, not yet final' : '已提交，尚未最终确认'), t('committed.p')));
      pending.forEach(function (r) { box.appendChild(record(r, out)); box.appendChild(checks(r)); });
      box.dataset.verdict = 'committed';
      return;
    }
    var r = results[0] || { checks: [] };
    var para = r.verdict === 'mismatch' || expectBad ? t('mismatch.p') : t('invalid.p');
    box.appendChild(verdictBox('v-mismatch', '✗', t('mismatch') + ' · ' + (lang === 'zh' ? 'Mismatch' : '不一致'), para,
      expectBad ? t('expect.differs') : r.reason));
    box.appendChild(rows([[t('digest'), out.digest, 'mono'], [t('network'), cfg.network, 'mono']]));
    box.appendChild(checks(r));
    box.dataset.verdict = 'mismatch';
  }

  // A QR code from a certificate opens /verify?sha256=…: check that record's
  // proof at once; the file itself is checked when it is chosen.
  function fromQR() {
    var q = new URLSearchParams(location.search);
    var d = (q.get('sha256') || '').toLowerCase();
    if (cfg.mode !== 'node' || !/^[0-9a-f]{64}$/.test(d)) { return; }
    state.expect = d;
    setStatus(t('looking'));
    Promise.all([loadVerifier(), fetch(cfg.lookup + d)]).then(function (a) {
      var v = a[0], resp = a[1];
      if (resp.status === 404) { render({ kind: 'notfound', digest: d }); return null; }
      if (!resp.ok) { throw new Error('HTTP ' + resp.status); }
      return resp.text().then(function (text) {
        var res = JSON.parse(v.verifyLookup(text, d, cfg.network));
        var want = q.get('record');
        if (want && res.results) { res.results = res.results.filter(function (r) { return r.record_id === want; }); }
        setStatus('');
        render({ kind: 'record', digest: d, res: res });
      });
    }).catch(function (e) { setStatus(t('err') + e.message); });
  }

  syncMode();
  applyLang();
  fromQR();
}());
