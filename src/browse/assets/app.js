// The archive page: reads the data files beside it (browse/*.js, each calling window.__cv_push)
// and the archived images by relative links. No request leaves the folder; no framework.
'use strict';
(function () {
  const PAGE_SIZE = 48;
  const MAX_CHUNKS = 40; // chunks of images or predictions kept in memory at once
  const store = new Map();
  const waiters = new Map();
  const scripts = new Map();
  const chunkOrder = [];

  window.__cv_push = function (key, text) {
    store.set(key, JSON.parse(text));
    (waiters.get(key) || []).forEach((w) => w.resolve(store.get(key)));
    waiters.delete(key);
  };

  // The only scripts ever loaded: data files by ids and chunk numbers the data gives, so that a
  // tampered data file cannot point a <script> at another archived file (`cvarchive verify`
  // checks that every .js file in the payload is a pure data call).
  const DATA_FILE = /^browse\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\/(project|index|(images|predictions)-[0-9]{4,})\.js$/;

  // Loads a data file once; chunk files are forgotten again beyond MAX_CHUNKS.
  function load(key, src, isChunk) {
    if (store.has(key)) return Promise.resolve(store.get(key));
    if (!DATA_FILE.test(src)) return Promise.reject(new Error('refusing to load ' + src));
    return new Promise((resolve, reject) => {
      const list = waiters.get(key) || [];
      list.push({ resolve, reject });
      waiters.set(key, list);
      if (scripts.has(key)) return;
      const s = document.createElement('script');
      s.src = src;
      s.onerror = () => {
        scripts.delete(key);
        s.remove();
        (waiters.get(key) || []).forEach((w) => w.reject(new Error('cannot load ' + src)));
        waiters.delete(key);
      };
      scripts.set(key, s);
      document.body.appendChild(s);
      if (isChunk) {
        chunkOrder.push(key);
        while (chunkOrder.length > MAX_CHUNKS) {
          const old = chunkOrder.shift();
          store.delete(old);
          const el = scripts.get(old);
          if (el) el.remove();
          scripts.delete(old);
        }
      }
    });
  }

  // Builds an element; strings become text nodes, never markup.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children) el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    return el;
  }
  const fmt = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : n === null || n === undefined ? '–' : String(n));
  const pct = (x) => (typeof x === 'number' ? (x * 100).toFixed(1) + '%' : '–');
  const bytes = (n) => {
    if (typeof n !== 'number') return '–';
    const u = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return (i ? n.toFixed(1) : n) + ' ' + u[i];
  };
  const text = (v) => (v === null || v === undefined ? '–' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const get = (o, ...path) => path.reduce((a, k) => (a && typeof a === 'object' ? a[k] : undefined), o);

  function kv(pairs) {
    return h('dl', { class: 'kv' }, pairs.filter((p) => p).map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v instanceof Node ? v : text(v))]));
  }
  function table(head, rows, attrs) {
    return h('table', attrs || {}, h('thead', {}, h('tr', {}, head.map((c) => h('th', { class: /^#|num/.test(c[1] || '') ? 'num' : null, text: c[0] })))),
      h('tbody', {}, rows));
  }
  // Flattens an object into [dotted.key, value] pairs for a definition list.
  function flatten(o, prefix, out) {
    for (const [k, v] of Object.entries(o || {})) {
      const key = prefix ? prefix + '.' + k : k;
      if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length) flatten(v, key, out);
      else out.push([key, Array.isArray(v) ? (v.length ? v.map(text).join(', ') : '[]') : v]);
    }
    return out;
  }

  // ---- state and routing (in the URL's fragment, which works from file://) ----
  let account = null;
  let renderToken = 0;
  function route() {
    const q = new URLSearchParams(location.hash.replace(/^#/, ''));
    return { project: q.get('project'), view: q.get('view') || 'overview', filter: q.get('filter') || 'all', page: Math.max(0, parseInt(q.get('page') || '0', 10) || 0) };
  }
  function href(r) {
    const q = new URLSearchParams();
    if (r.project) q.set('project', r.project);
    if (r.view && r.view !== 'overview') q.set('view', r.view);
    if (r.filter && r.filter !== 'all') q.set('filter', r.filter);
    if (r.page) q.set('page', String(r.page));
    return '#' + q.toString();
  }

  function start() {
    account = store.get('account');
    const main = document.getElementById('main');
    if (!account) {
      main.replaceChildren(h('p', { class: 'bad', text: 'The page data (browse/account.js) is missing or unreadable.' }));
      return;
    }
    const rec = account.account || {};
    const total = account.projects.reduce((a, p) => a + p.images, 0);
    document.getElementById('summary-line').textContent =
      [get(rec, 'source', 'endpointHost'), rec.finished || rec.started, account.projects.length + ' project(s)', fmt(total) + ' image(s)'].filter((x) => x).join(' · ');
    const nav = document.getElementById('projects');
    nav.replaceChildren(...account.projects.map((p) =>
      h('a', { href: href({ project: p.id }), 'data-project': p.id },
        p.name || p.id, h('small', { text: fmt(p.images) + ' images · ' + fmt(p.tags) + ' tags' + (p.regions ? ' · regions' : '')
          + (p.onlyInIterations ? ' · ' + fmt(p.onlyInIterations) + ' only in iterations' : '') })),
    ));
    window.addEventListener('hashchange', show);
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeDetail(); });
    show();
  }

  function show() {
    const r = route();
    closeDetail();
    for (const a of document.querySelectorAll('#projects a')) a.classList.toggle('current', a.dataset.project === r.project);
    const token = ++renderToken;
    const main = document.getElementById('main');
    main.dataset.state = 'loading';
    const p = r.project && account.projects.find((x) => x.id === r.project);
    const done = () => { if (token === renderToken) { main.dataset.route = location.hash; main.dataset.state = 'ready'; document.body.dataset.ready = '1'; } };
    const fail = (e) => { if (token === renderToken) { main.replaceChildren(h('p', { class: 'bad', text: String(e && e.message || e) })); done(); } };
    if (!p) { main.replaceChildren(home()); done(); return; }
    load('project:' + p.id, 'browse/' + p.id + '/project.js').then((proj) => {
      if (token !== renderToken) return null;
      return projectView(proj, r, token);
    }).then(done, fail);
  }

  // ---- the account ----
  function home() {
    const rec = account.account || {};
    const projects = account.projects;
    const missing = (rec.missing || []).concat(...(rec.projects || []).map((p) => p.missing || []));
    const notes = [].concat(...(rec.projects || []).map((p) => (p.notes || []).map((n) => (p.name || p.id) + ': ' + n)));
    return h('div', { id: 'home-view' },
      h('h1', { text: 'Account archive' }),
      kv([
        ['Exported from', get(rec, 'source', 'endpointHost')],
        ['API version', get(rec, 'source', 'apiVersion')],
        ['Started', rec.started], ['Finished', rec.finished],
        ['Tool', [get(rec, 'tool', 'name'), get(rec, 'tool', 'version')].filter((x) => x).join(' ')],
        ['Format', rec.format],
        ['Complete', h('span', { class: rec.complete ? 'ok' : 'bad', text: rec.complete ? 'yes, nothing missing' : 'no, see below' })],
        ['Included', rec.options ? ['predictions: ' + (rec.options.predictions ? 'yes' : 'no'), 'models: ' + (rec.options.includeModels ? 'yes' : 'no')].join(', ') : null],
      ]),
      h('h2', { text: 'Projects' }),
      table([['Project'], ['Tagged (reported)', 'num'], ['Untagged (reported)', 'num'], ['Tagged (archived)', 'num'], ['Untagged (archived)', 'num'],
        ['Only in iterations (archived)', 'num'], ['Tags', 'num'], ['Iterations', 'num'], ['Predictions', 'num'], ['Image bytes', 'num'], ['Missing', 'num']],
      projects.map((p) => {
        const r = (rec.projects || []).find((x) => x.id === p.id) || {};
        return h('tr', { 'data-project-row': p.id },
          h('td', {}, h('a', { href: href({ project: p.id }), text: p.name || p.id })),
          ...[get(r, 'reported', 'tagged'), get(r, 'reported', 'untagged'), p.tagged, p.untagged, p.onlyInIterations, p.tags, p.iterations, p.predictions]
            .map((v) => h('td', { class: 'num', text: fmt(v) })),
          h('td', { class: 'num', text: bytes(get(r, 'archived', 'imageBytes')) }),
          h('td', { class: 'num' + ((r.missing || []).length ? ' bad' : ''), text: fmt((r.missing || []).length) }));
      }), { id: 'project-table' }),
      missing.length ? [h('h2', { text: 'Not archived' }), table([['Kind'], ['Project'], ['Id'], ['Why']],
        missing.map((m) => h('tr', {}, [m.kind, m.project, m.id, m.reason].map((v) => h('td', { text: text(v) })))))] : null,
      notes.length ? [h('h2', { text: 'Notes' }), h('ul', {}, notes.map((n) => h('li', { text: n })))] : null,
      account.problems.length ? [h('h2', { text: 'Problems reading the archive' }), h('ul', { class: 'problems' }, account.problems.map((n) => h('li', { text: n })))] : null,
      h('p', { class: 'muted', text: 'Page written by ' + account.renderedBy + '. Every file shown here is in the folder beside this page.' }));
  }

  // ---- one project ----
  function projectView(proj, r, token) {
    const main = document.getElementById('main');
    const tabs = [['overview', 'Overview'], ['images', 'Images (' + fmt(proj.images) + ')'], ['predictions', 'Stored predictions (' + fmt(proj.predictions) + ')']];
    const body = h('div', { id: 'view-' + r.view });
    main.replaceChildren(...[
      h('h1', { text: proj.name || proj.id }),
      h('div', { class: 'muted' }, get(proj, 'project', 'description') || '', ' ', h('code', { text: proj.id })),
      h('div', { class: 'tabs' }, tabs.map(([v, label]) => h('a', { href: href({ project: proj.id, view: v }), class: v === r.view ? 'current' : null, 'data-view': v, text: label }))),
      proj.problems.length ? h('ul', { class: 'problems' }, proj.problems.map((n) => h('li', { text: n }))) : null,
      body].filter((x) => x));
    if (r.view === 'images') return imagesView(proj, r, body, token);
    if (r.view === 'predictions') return predictionsView(proj, r, body, token);
    overview(proj, body);
    return null;
  }

  function overview(proj, body) {
    const settings = flatten(proj.project && typeof proj.project === 'object' ? proj.project : {}, '', []).filter(([k]) => k !== 'id' && k !== 'name');
    const max = Math.max(1, ...proj.tags.map((t) => t.archived));
    body.append(h('div', {},
      h('h2', { text: 'Settings' }),
      settings.length ? kv(settings) : h('p', { class: 'muted', text: 'project.json is not in the archive.' }),
      h('h2', { text: 'Tags' }),
      proj.tags.length ? table([['Tag'], ['Type'], ['Images (service)', 'num'], ['Images (archived)', 'num'], ['']],
        proj.tags.map((t, i) => h('tr', { 'data-tag': t.name, 'data-tag-id': t.id },
          h('td', {}, h('a', { href: href({ project: proj.id, view: 'images', filter: 'tag:' + i }), text: t.name }), t.description ? h('div', { class: 'muted', text: t.description }) : null),
          h('td', { text: text(t.type) }),
          h('td', { class: 'num count-reported', text: fmt(t.imageCount) }),
          h('td', { class: 'num count-archived', text: fmt(t.archived) }),
          h('td', {}, bar(t.archived / max)))), { id: 'tag-table' }) : h('p', { class: 'muted', text: 'No tags.' }),
      h('h2', { text: 'Iterations' }),
      proj.iterations.length ? proj.iterations.map((it) => iteration(proj, it)) : h('p', { class: 'muted', text: 'No iterations.' })));
  }
  function bar(f) {
    const b = h('span', { class: 'bar' });
    b.style.width = Math.round(Math.max(0, Math.min(1, f || 0)) * 120) + 'px';
    return b;
  }

  function iteration(proj, it) {
    const i = it.iteration || {};
    // How the export found the iteration's images (account.json; absent in older archives).
    const found = ((proj.record || {}).iterations || []).find((x) => x.id === i.id);
    const perf = it.performance;
    const per = (perf && perf.perTagPerformance) || [];
    const exports = Array.isArray(it.exports) ? it.exports : [];
    return h('section', { class: 'iteration', 'data-iteration': i.id },
      h('h3', { text: (i.name || i.id) + (i.status ? ' · ' + i.status : '') }),
      kv([['Id', i.id], ['Trained', i.trainedAt], ['Training type', i.trainingType], ['Domain', i.domainId], ['Classification type', i.classificationType],
        ['Published as', i.publishName], ['Exportable to', (i.exportableTo || []).join(', ') || null],
        ['Images', found ? fmt(found.reported) + ' (' + fmt(found.onlyInIteration) + ' no longer in the workspace, archived from this iteration)' : null]]
        .filter(([, v]) => v !== undefined && v !== null)),
      perf ? [
        table([['Tag'], ['Precision', 'num'], ['Recall', 'num'], ['Average precision', 'num']],
          [h('tr', { class: 'overall' }, h('td', {}, h('b', { text: 'Overall' })), ...[perf.precision, perf.recall, perf.averagePrecision].map((v) => h('td', { class: 'num', text: pct(v) })))]
            .concat(per.map((t) => h('tr', { 'data-perf-tag': t.name }, h('td', { text: t.name }), ...[t.precision, t.recall, t.averagePrecision].map((v) => h('td', { class: 'num', text: pct(v) }))))),
          { class: 'perf' }),
        chart(per),
      ] : h('p', { class: 'muted', text: 'No performance in the archive (the iteration was not trained).' }),
      exports.length ? table([['Model export'], ['Flavor'], ['Status'], ['Newer version']],
        exports.map((e) => h('tr', {}, [e.platform, e.flavor, e.status, e.newerVersionAvailable ? 'available' : 'no'].map((v) => h('td', { text: text(v) })))), { class: 'exports' })
        : h('p', { class: 'muted', text: 'No model exports.' }));
  }

  // Grouped bars: precision, recall and average precision per tag (first 40 tags).
  function chart(per) {
    const tags = per.slice(0, 40);
    if (!tags.length) return null;
    const group = 36, H = 110, W = tags.length * group + 40;
    const root = svg('svg', { class: 'chart', width: W, height: H + 34, viewBox: '0 0 ' + W + ' ' + (H + 34), role: 'img', 'aria-label': 'precision, recall and average precision per tag' });
    [0, 0.5, 1].forEach((v) => {
      root.appendChild(svg('line', { x1: 30, x2: W, y1: H - v * H + 4, y2: H - v * H + 4, stroke: '#d8dee4' }));
      root.appendChild(svg('text', { x: 0, y: H - v * H + 8 }, (v * 100) + '%'));
    });
    tags.forEach((t, i) => {
      ['precision', 'recall', 'averagePrecision'].forEach((k, j) => {
        const v = Math.max(0, Math.min(1, t[k] || 0));
        root.appendChild(svg('rect', { x: 34 + i * group + j * 10, y: H - v * H + 4, width: 9, height: v * H, fill: ['#0b62c4', '#e8710a', '#1a7f37'][j] }));
      });
      const label = String(t.name || '').slice(0, 6);
      root.appendChild(svg('text', { x: 34 + i * group, y: H + 20 }, label));
    });
    return h('div', {}, root, h('div', { class: 'legend' },
      [['#0b62c4', 'precision'], ['#e8710a', 'recall'], ['#1a7f37', 'average precision']].map(([c, n]) => {
        const sw = h('i'); sw.style.background = c; return h('span', {}, sw, n);
      })));
  }

  // ---- images: a page of ordinals from the index, records from the chunks holding them ----
  function selection(index, filter) {
    if (filter === 'untagged') return index.untagged;
    if (filter === 'iteration-only') return index.onlyInIterations || [];
    if (filter === 'workspace') {
      if (!index._workspace) {
        const only = new Set(index.onlyInIterations || []);
        const out = [];
        for (let i = 0; i < index.count; i++) if (!only.has(i)) out.push(i);
        index._workspace = out;
      }
      return index._workspace;
    }
    if (filter === 'tagged') {
      if (!index._tagged) {
        const un = new Set(index.untagged);
        const out = [];
        for (let i = 0; i < index.count; i++) if (!un.has(i)) out.push(i);
        index._tagged = out;
      }
      return index._tagged;
    }
    const m = /^tag:(\d+)$/.exec(filter);
    if (m) return index.tags[Number(m[1])] || [];
    return { length: index.count, all: true };
  }
  function pageOf(sel, page) {
    const out = [];
    for (let i = page * PAGE_SIZE; i < Math.min(sel.length, (page + 1) * PAGE_SIZE); i++) out.push(sel.all ? i : sel[i]);
    return out;
  }
  function records(kind, proj, ordinals, chunkSize) {
    const chunks = [...new Set(ordinals.map((o) => Math.floor(o / chunkSize)))];
    return Promise.all(chunks.map((c) => load(kind + ':' + proj.id + ':' + c, 'browse/' + proj.id + '/' + kind + '-' + String(c).padStart(4, '0') + '.js', true)
      .then((items) => [c, items]))).then((loaded) => {
      const byChunk = new Map(loaded);
      return ordinals.map((o) => byChunk.get(Math.floor(o / chunkSize))[o % chunkSize]);
    });
  }
  function pager(proj, r, total) {
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    const page = Math.min(r.page, pages - 1);
    const go = (p) => () => { location.hash = href(Object.assign({}, r, { page: p })); };
    return [page, h('span', { class: 'toolbar' },
      h('button', { id: 'prev', disabled: page === 0, onclick: go(page - 1), text: '‹ Previous' }),
      h('span', { id: 'page-info', text: 'page ' + (page + 1) + ' of ' + pages + ' · ' + fmt(total) + ' image(s)' }),
      h('button', { id: 'next', disabled: page >= pages - 1, onclick: go(page + 1), text: 'Next ›' }))];
  }

  function imagesView(proj, r, body, token) {
    return load('index:' + proj.id, 'browse/' + proj.id + '/index.js').then((index) => {
      if (token !== renderToken) return null;
      const sel = selection(index, r.filter);
      const only = index.onlyInIterations || [];
      const select = h('select', { id: 'filter', onchange: (e) => { location.hash = href({ project: proj.id, view: 'images', filter: e.target.value }); } },
        h('option', { value: 'all', text: 'All images (' + fmt(index.count) + ')' }),
        h('option', { value: 'tagged', text: 'Tagged (' + fmt(index.count - index.untagged.length) + ')' }),
        h('option', { value: 'untagged', text: 'Untagged (' + fmt(index.untagged.length) + ')' }),
        only.length ? [h('option', { value: 'workspace', text: 'In the workspace (' + fmt(index.count - only.length) + ')' }),
          h('option', { value: 'iteration-only', text: 'Only in iterations (' + fmt(only.length) + ')' })] : null,
        proj.tags.map((t, i) => h('option', { value: 'tag:' + i, text: 'Tag: ' + t.name + ' (' + fmt((index.tags[i] || []).length) + ')' })));
      select.value = r.filter;
      const [page, nav] = pager(proj, r, sel.length);
      const grid = h('div', { id: 'grid', 'data-filter': r.filter, 'data-page': page });
      body.append(h('div', { class: 'toolbar' }, h('label', {}, 'Show ', select), nav), grid);
      const ordinals = pageOf(sel, page);
      if (!ordinals.length) { grid.append(h('p', { class: 'muted', text: 'No images here.' })); return null; }
      return records('images', proj, ordinals, index.chunkSize).then((items) => {
        if (token !== renderToken) return;
        grid.append(...items.map((img) => tile(proj, img, 'image')));
      });
    });
  }

  function predictionsView(proj, r, body, token) {
    const total = proj.predictions;
    const [page, nav] = pager(proj, r, total);
    const grid = h('div', { id: 'grid', 'data-page': page });
    body.append(h('div', { class: 'toolbar' }, nav), grid);
    const ordinals = pageOf({ length: total, all: true }, page);
    if (!ordinals.length) { grid.append(h('p', { class: 'muted', text: 'No stored predictions.' })); return null; }
    const chunkSize = account.chunks.predictions;
    return records('predictions', proj, ordinals, chunkSize).then((items) => {
      if (token !== renderToken) return;
      grid.append(...items.map((p) => tile(proj, p, 'prediction')));
    });
  }

  // An image with its regions (or predicted boxes) drawn over it, sized to the image.
  function frame(proj, rec, kind, detail) {
    const f = h('div', { class: 'frame' + (detail ? ' detail-frame' : '') });
    if (!rec.file || /\.bin$/.test(rec.file)) {
      f.append(h('div', { class: 'missing-file', text: rec.file ? 'not an image file' : 'no file in the archive' }));
      return f;
    }
    const img = h('img', { src: rec.file, alt: rec.id, loading: 'lazy', decoding: 'async' });
    if (rec.w > 0 && rec.h > 0) {
      // Fit the box (small images grow, large ones shrink) so regions are easy to see.
      const [bw, bh] = detail ? [Math.min(900, innerWidth * 0.6), innerHeight * 0.7] : [156, 150];
      const k = Math.min(bw / rec.w, bh / rec.h);
      img.style.width = Math.round(rec.w * k) + 'px';
      img.style.height = Math.round(rec.h * k) + 'px';
    }
    img.addEventListener('error', () => { f.replaceChildren(h('div', { class: 'missing-file', text: 'file not found beside this page: ' + rec.file })); });
    f.append(img);
    const boxes = kind === 'image' ? (rec.regions || []).map((r) => ({ tag: r[0], box: r.slice(1), cls: 'region' }))
      : (rec.preds || []).filter((p) => p.length === 6 && p[1] >= (detail ? 0.1 : 0.5)).map((p) => ({ tag: p[0], box: p.slice(2), cls: 'region pred', prob: p[1] }));
    for (const b of boxes) {
      const [l, t, w, hh] = b.box.map((v) => Math.max(0, Math.min(1, v || 0)));
      const tag = proj.tags[b.tag] || {};
      const d = h('div', { class: b.cls, 'data-tag': tag.name, title: tag.name },
        h('span', { text: (tag.name || '?') + (b.prob !== undefined ? ' ' + pct(b.prob) : '') }));
      Object.assign(d.style, { left: l * 100 + '%', top: t * 100 + '%', width: w * 100 + '%', height: hh * 100 + '%' });
      f.append(d);
    }
    return f;
  }
  function chips(proj, rec, kind) {
    if (kind === 'image') {
      if (!rec.tags.length) return [h('span', { class: 'chip untagged', text: rec.tagged ? 'tagged' : 'untagged' })];
      return rec.tags.map((i) => h('span', { class: 'chip', text: (proj.tags[i] || {}).name || '?' }));
    }
    return (rec.preds || []).slice(0, 3).map((p) => h('span', { class: 'chip', text: ((proj.tags[p[0]] || {}).name || '?') + ' ' + pct(p[1]) }));
  }
  // Older archives do not say: their images came from the workspace.
  const onlyInIterations = (rec) => rec.workspace === false;
  // The iterations holding an image, by name; null when the archive does not record them.
  function holders(proj, rec) {
    if (!Array.isArray(rec.iterations)) return null;
    return rec.iterations.map((i) => ((proj.holders || [])[i] || {}).name || '?');
  }
  function tile(proj, rec, kind) {
    const only = kind === 'image' && onlyInIterations(rec);
    return h('div', { class: 'tile' + (only ? ' iteration-only' : ''), tabindex: 0, 'data-id': rec.id, 'data-kind': kind,
      'data-workspace': kind === 'image' ? String(!only) : null,
      onclick: () => openDetail(proj, rec, kind), onkeydown: (e) => { if (e.key === 'Enter') openDetail(proj, rec, kind); } },
    h('div', { class: 'thumb' }, frame(proj, rec, kind, false)),
    h('div', { class: 'caption' }, only ? h('span', { class: 'chip iteration-only', title: 'deleted from the workspace; trained iterations still hold it', text: 'only in iterations' }) : null,
      chips(proj, rec, kind)));
  }

  function openDetail(proj, rec, kind) {
    const d = document.getElementById('detail');
    const tagName = (i) => (proj.tags[i] || {}).name || '?';
    const rows = kind === 'image'
      ? table([['Region'], ['Left', 'num'], ['Top', 'num'], ['Width', 'num'], ['Height', 'num']],
        (rec.regions || []).map((r) => h('tr', {}, h('td', { text: tagName(r[0]) }), ...r.slice(1).map((v) => h('td', { class: 'num', text: text(v) })))), { id: 'detail-regions' })
      : table([['Predicted tag'], ['Probability', 'num'], ['Box']],
        (rec.preds || []).map((p) => h('tr', {}, h('td', { text: tagName(p[0]) }), h('td', { class: 'num', text: pct(p[1]) }), h('td', { text: p.length === 6 ? p.slice(2).join(', ') : '' }))));
    d.replaceChildren(h('div', { class: 'panel', role: 'dialog', 'aria-modal': 'true', 'data-id': rec.id, onclick: (e) => e.stopPropagation() },
      h('div', {}, frame(proj, rec, kind, true)),
      h('div', { class: 'info' },
        h('button', { class: 'close', onclick: closeDetail, text: 'Close' }),
        h('h3', { text: kind === 'image' ? 'Image' : 'Stored prediction' }),
        kv([['Id', h('code', { text: rec.id })], ['Created', rec.created],
          kind === 'image' ? ['Size', rec.w && rec.h ? rec.w + ' × ' + rec.h + ' px, ' + bytes(rec.size) : bytes(rec.size)] : ['Size', bytes(rec.size)],
          kind === 'image' ? ['Status', rec.tagged ? 'tagged' : 'untagged'] : ['Iteration', rec.iteration],
          kind === 'image' ? ['Workspace', h('span', { id: 'detail-workspace', class: onlyInIterations(rec) ? 'bad' : null,
            text: onlyInIterations(rec) ? 'no: deleted from the workspace; only the iterations below hold it' : 'yes' })] : null,
          kind === 'image' ? ['Held by iterations', h('span', { id: 'detail-iterations',
            text: holders(proj, rec) === null ? 'not recorded in this archive' : holders(proj, rec).join(', ') || 'none' })] : null,
          ['File', rec.file ? h('a', { href: rec.file, text: rec.file }) : 'not in the archive'],
          ['SHA-256', rec.sha256 ? h('code', { text: rec.sha256 }) : null]]),
        kind === 'image' ? [h('h3', { text: 'Tags' }), h('div', { id: 'detail-tags' }, chips(proj, rec, kind))] : null,
        rows,
        kind === 'image' && rec.meta.length ? [h('h3', { text: 'Metadata' }), table([['Key'], ['Value']], rec.meta.map(([k, v]) => h('tr', {}, h('td', { text: k }), h('td', { text: v }))), { id: 'detail-meta' })] : null)));
    d.hidden = false;
    d.onclick = closeDetail;
  }
  function closeDetail() {
    const d = document.getElementById('detail');
    if (d && !d.hidden) { d.hidden = true; d.replaceChildren(); }
  }

  document.addEventListener('DOMContentLoaded', start);
})();
