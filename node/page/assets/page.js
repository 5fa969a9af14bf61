// The cluster page's script: reads the node's event stream (GET /events, Server-Sent Events) and
// draws the members, who is connected to whom, private catch-up and circuit breakers, three
// charts (uPlot) and the timeline. It asks the node nothing else: one stream per open page, and
// the node builds the view once per second for every stream.
//
// The stream is read with fetch() rather than EventSource so that, where the RPC listener needs a
// bearer token, the page can send it: open the page as `…/#token=<token>`. The token is moved to
// sessionStorage and removed from the address bar; a URL fragment is never sent to a server.
//
// Everything from the stream is put into the page as text (textContent), never as markup.
'use strict';

(function () {
  const TOKEN_KEY = 'quorate.page.token';
  /** No view for this long: the stream is shown stale (the node itself may be down). */
  const STALE_AFTER_MS = 3000;
  const MAX_RETRY_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };

  function takeToken() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      history.replaceState(null, '', location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }
  const token = takeToken();

  // --- stream ------------------------------------------------------------------------------
  let retryMs = 1000;
  let lastViewAt = 0;

  function setStream(state, text) {
    const s = $('stream');
    s.dataset.state = state;
    s.textContent = text;
  }

  async function readStream() {
    const headers = { accept: 'text/event-stream' };
    if (token) headers.authorization = 'Bearer ' + token;
    const res = await fetch('/events', { headers, cache: 'no-store' });
    if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) throw new Error('the node closed the stream');
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        onFrame(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
    }
  }

  function onFrame(frame) {
    let event = 'message';
    const data = [];
    for (const line of frame.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      else if (line.startsWith('retry:')) retryMs = Number(line.slice(6)) || retryMs;
    }
    if (data.length === 0) return;
    const payload = JSON.parse(data.join('\n'));
    if (event === 'history') onHistory(payload);
    else if (event === 'view') onView(payload);
  }

  async function run() {
    let delay = retryMs;
    for (;;) {
      try {
        setStream('connecting', 'connecting…');
        await readStream();
      } catch (err) {
        setStream('lost', 'stream lost (' + (err && err.message ? err.message : err) + '), retrying');
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(MAX_RETRY_MS, delay * 2);
      if (Date.now() - lastViewAt < STALE_AFTER_MS) delay = retryMs;
    }
  }

  setInterval(() => {
    if (lastViewAt === 0) return;
    const age = Date.now() - lastViewAt;
    if (age > STALE_AFTER_MS && $('stream').dataset.state === 'live') {
      setStream('stale', 'no update for ' + Math.round(age / 1000) + ' s');
    }
  }, 500);

  // --- view --------------------------------------------------------------------------------
  /**
   * Between two views the page ages every member's lastSeen by the time since the last view, up to
   * one interval and a half: a member that already missed a sample at the last view is shown DOWN
   * the moment it passes downAfterMs (not up to a second later, at the next view), while a late view
   * alone never makes a member that answered look down.
   */
  const EXTRAPOLATE_SLACK_MS = 500;
  let lastView = null;
  let renderedDown = '';

  function onView(v) {
    lastViewAt = Date.now();
    lastView = v;
    setStream('live', 'live');
    $('seen-from').textContent = 'seen from ' + v.self.name + ' (raft id ' + v.self.raftId + ')';
    renderState();
    renderTimeline(v.timeline);
    if (v.rate) addPoint(v.rate);
  }

  /** The members with `down` decided on the node's clock (nowMs and lastSeenMs are both its), not the browser's. */
  function membersNow() {
    const v = lastView;
    const nodeNowMs = v.nowMs + Math.min(Date.now() - lastViewAt, v.sampleIntervalMs + EXTRAPOLATE_SLACK_MS);
    const members = [...v.members].sort((a, b) => a.raftId - b.raftId);
    for (const m of members) {
      m.down = m.raftId !== v.self.raftId && (m.lastSeenMs === null || nodeNowMs - m.lastSeenMs > v.downAfterMs);
    }
    return { members, nodeNowMs };
  }

  function renderState() {
    const { members, nodeNowMs } = membersNow();
    renderedDown = members.map((m) => m.down).join();
    renderMembers(members, lastView, nodeNowMs);
    renderLinks(members);
    renderPrivacy(members);
  }

  setInterval(() => {
    if (
      lastView &&
      membersNow()
        .members.map((m) => m.down)
        .join() !== renderedDown
    )
      renderState();
  }, 250);

  function renderMembers(members, v, nodeNowMs) {
    const body = $('members').tBodies[0];
    body.replaceChildren(
      ...members.map((m) => {
        const s = m.sample;
        const tr = el('tr');
        tr.dataset.member = m.name;
        tr.dataset.state = m.down ? 'down' : 'up';
        tr.dataset.role = s && !m.down ? s.role : 'unknown';
        const role = s ? s.role + (m.membership === 'learner' && s.role !== 'learner' ? ' (learner)' : '') : '?';
        const seen =
          m.lastSeenMs === null ? 'never' : m.raftId === v.self.raftId ? 'this node' : ago(nodeNowMs - m.lastSeenMs);
        tr.append(
          el('td', m.name),
          el('td', m.raftId, 'num'),
          el('td', (s && s.role === 'leader' && !m.down ? '★ ' : '') + role, 'role'),
          el('td', m.down ? 'DOWN' : 'up', 'state'),
          el('td', s ? s.term : '–', 'num'),
          el('td', s ? s.commitIndex : '–', 'num'),
          el('td', s ? s.appliedIndex : '–', 'num'),
          el('td', s ? s.head : '–', 'num'),
          el('td', seen + (m.down && m.error ? ' — ' + m.error : '')),
          el('td', s && s.alarm ? s.alarm : '', 'alarm'),
        );
        return tr;
      }),
    );
  }

  function renderLinks(members) {
    const table = $('links');
    const head = el('tr');
    head.append(el('th'), ...members.map((m) => el('th', m.name)));
    const rows = members.map((from) => {
      const tr = el('tr');
      tr.dataset.member = from.name;
      tr.append(el('th', from.name));
      for (const to of members) {
        let cell;
        if (from.raftId === to.raftId) cell = el('td', '—', 'link-self');
        else if (from.down || !from.sample) cell = el('td', '?', 'link-unknown');
        else if (from.sample.connectedTo.includes(to.raftId)) cell = el('td', '✓', 'link-ok');
        else cell = el('td', '✗', 'link-bad');
        cell.title = from.name + ' → ' + to.name;
        tr.append(cell);
      }
      return tr;
    });
    table.replaceChildren(el('thead'), el('tbody'));
    table.tHead.append(head);
    table.tBodies[0].append(...rows);
  }

  function renderPrivacy(members) {
    $('privacy').tBodies[0].replaceChildren(
      ...members.map((m) => {
        const s = m.sample;
        const tr = el('tr');
        tr.dataset.member = m.name;
        tr.append(el('td', m.name));
        if (!s) {
          tr.append(el('td', '?'), el('td', '?'));
          return tr;
        }
        const c = s.privateCatchUp;
        tr.append(
          el(
            'td',
            c
              ? 'catching up: ' + c.blocksLeft + ' blocks to replay, ' + c.blocksToFetch + ' to fetch'
              : 'in step with the head',
          ),
        );
        const breakers = el('td');
        if (s.breakers.length === 0) breakers.textContent = 'none yet';
        for (const b of s.breakers) {
          breakers.append(el('span', b.peer + ': ' + b.state, 'breaker-' + b.state), document.createTextNode(' '));
        }
        tr.append(breakers);
        return tr;
      }),
    );
  }

  function renderTimeline(events) {
    $('timeline').replaceChildren(
      ...[...events].reverse().map((e) => {
        const li = el('li');
        li.dataset.kind = e.kind;
        li.append(el('time', clock(e.atMs)), el('span', e.kind, 'kind'), el('span', e.text, 'text'));
        return li;
      }),
    );
  }

  // --- charts ------------------------------------------------------------------------------
  let historySeconds = 300;
  const series = { t: [], blocks: [], txs: [], latency: [] };
  const charts = [];

  function makeChart(id, label, color, values) {
    const box = $(id);
    const width = Math.max(260, box.clientWidth - 8);
    const chart = new uPlot(
      {
        width,
        height: 150,
        title: label,
        legend: { show: false },
        scales: { x: { time: true } },
        series: [{}, { label, stroke: color, width: 1.5, fill: color + '22', spanGaps: false }],
        axes: [{ space: 60 }, { size: 56 }],
      },
      [series.t, values],
      box,
    );
    charts.push({ chart, values });
  }

  function onHistory(h) {
    historySeconds = h.historySeconds;
    $('history-minutes').textContent = String(Math.round(historySeconds / 60));
    series.t.length = series.blocks.length = series.txs.length = series.latency.length = 0;
    for (const p of h.points) pushPoint(p);
    if (charts.length === 0) {
      makeChart('chart-blocks', 'blocks / s', '#0969da', series.blocks);
      makeChart('chart-txs', 'transactions / s', '#1a7f37', series.txs);
      makeChart('chart-latency', 'commit latency, ms (minted → applied)', '#8250df', series.latency);
    } else redraw();
  }

  function pushPoint(p) {
    series.t.push(p.atMs / 1000);
    series.blocks.push(p.blocksPerSecond);
    series.txs.push(p.txPerSecond);
    series.latency.push(p.commitLatencyMs);
    const excess = series.t.length - historySeconds;
    if (excess > 0) for (const a of Object.values(series)) a.splice(0, excess);
  }

  function addPoint(p) {
    const last = series.t[series.t.length - 1];
    if (last !== undefined && p.atMs / 1000 <= last) return;
    pushPoint(p);
    redraw();
  }

  function redraw() {
    for (const c of charts) c.chart.setData([series.t, c.values]);
  }

  window.addEventListener('resize', () => {
    for (const c of charts)
      c.chart.setSize({ width: Math.max(260, c.chart.root.parentElement.clientWidth - 8), height: 150 });
  });

  // --- formatting --------------------------------------------------------------------------
  function ago(ms) {
    if (ms < 1500) return 'now';
    return Math.round(ms / 1000) + ' s ago';
  }
  function clock(ms) {
    const d = new Date(ms);
    return d.toLocaleTimeString([], { hour12: false });
  }

  run();
})();
