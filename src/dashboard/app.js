// Outpost dashboard: polls /api/state every 2 s and redraws. Plain DOM, no framework and no build
// step, so the Pi serves it as-is. Everything that comes from the broker (client ids, topics,
// payloads, log text) goes in through textContent: no server string is ever parsed as HTML.
'use strict'
;(() => {
  const POLL_MS = 2000
  const CHART_MS = 10 * 60 * 1000
  const SVG = 'http://www.w3.org/2000/svg'
  const $ = (id) => document.getElementById(id)
  let timer
  let lastOk
  let busy = false

  function el(tag, text, cls) {
    const e = document.createElement(tag)
    if (text !== undefined && text !== null) e.textContent = String(text)
    if (cls) e.className = cls
    return e
  }
  // A cell is a string (textContent) or a ready element.
  function row(cells, cls) {
    const tr = el('tr', undefined, cls)
    for (const c of cells) {
      const td = el('td', c instanceof Node ? undefined : c)
      if (c instanceof Node) td.append(c)
      tr.append(td)
    }
    return tr
  }
  function emptyRow(text, columns) {
    const tr = row([text], 'empty')
    tr.firstChild.colSpan = columns
    return tr
  }
  function fill(body, rows, columns, empty) {
    body.replaceChildren(...(rows.length > 0 ? rows : [emptyRow(empty, columns)]))
  }
  function badge(text, kind) {
    return el('span', text, 'badge ' + kind)
  }
  function facts(id, pairs) {
    const out = []
    for (const [k, v] of pairs) out.push(el('dt', k), el('dd', v))
    $(id).replaceChildren(...out)
  }

  function bytes(n) {
    if (typeof n !== 'number' || !(n >= 0)) return '–'
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
    let i = 0
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i]
  }
  function duration(s) {
    if (typeof s !== 'number' || !(s >= 0)) return '–'
    s = Math.floor(s)
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60)
    if (d > 0) return `${d}d ${h}h ${m}m`
    if (h > 0) return `${h}h ${m}m`
    if (m > 0) return `${m}m ${s % 60}s`
    return `${s}s`
  }
  const num = (n, digits = 1) => (typeof n !== 'number' ? '–' : Number.isInteger(n) ? String(n) : n.toFixed(digits))
  const clock = (ms) => new Date(ms).toLocaleTimeString()
  function cut(s, max) {
    return s.length > max ? s.slice(0, max - 1) + '…' : s
  }

  function overview(s) {
    const t = s.totals, last = s.rates[s.rates.length - 1]
    const loop = s.eventLoopDelayMs
    facts('overview-list', [
      ['Uptime', duration(s.uptimeSeconds)],
      ['Clients', `${t.clientsConnected} connected, ${t.clientsTotal} sessions`],
      ['Messages in', `${t.messagesIn} (${num(last ? last.messagesIn : 0)}/s)`],
      ['Messages out', `${t.messagesOut} (${num(last ? last.messagesOut : 0)}/s)`],
      ['Bytes in / out', `${bytes(t.bytesIn)} / ${bytes(t.bytesOut)}`],
      ['Dropped', String(t.dropped)],
      ['Memory', `${bytes(s.memory.rss)} RSS, heap ${bytes(s.memory.heapUsed)} of ${bytes(s.memory.heapTotal)}`],
      ['Event loop delay', `${num(loop.p50)} ms p50, ${num(loop.p99)} ms p99, ${num(loop.max)} ms max`],
    ])
    $('version').textContent = 'v' + s.version
  }

  // Rates as two lines (in, out) over the last CHART_MS, drawn with SVG elements made here.
  function chart(rates, now) {
    const svg = $('chart'), W = 360, H = 140, top = 14, bottom = H - 16
    const pts = rates.filter((r) => r.t >= now - CHART_MS)
    // Soon after a start there are only a few samples: the chart spans what there is.
    const from = Math.min(now - 60000, pts.length > 0 ? Math.max(now - CHART_MS, pts[0].t) : now)
    const span = now - from
    const minutes = Math.round(span / 60000) + ' min'
    let max = 1
    for (const r of pts) max = Math.max(max, r.messagesIn, r.messagesOut)
    const step = 10 ** Math.floor(Math.log10(max))
    max = [1, 2, 5, 10].map((k) => k * step).find((v) => v >= max)
    const x = (t) => ((t - from) / span) * W
    const y = (v) => bottom - (v / max) * (bottom - top)
    const node = (tag, attrs, text) => {
      const e = document.createElementNS(SVG, tag)
      for (const k in attrs) e.setAttribute(k, String(attrs[k]))
      if (text !== undefined) e.textContent = text
      return e
    }
    const parts = []
    for (const v of [0, max / 2, max]) {
      parts.push(node('line', { x1: 0, x2: W, y1: y(v), y2: y(v), class: 'grid' }))
      parts.push(node('text', { x: 2, y: y(v) - 2, class: 'label' }, num(v) + '/s'))
    }
    parts.push(node('text', { x: 2, y: H - 2, class: 'label' }, '−' + minutes))
    parts.push(node('text', { x: W - 2, y: H - 2, class: 'label end' }, 'now'))
    for (const key of ['messagesIn', 'messagesOut']) {
      const line = pts.map((r) => `${x(r.t).toFixed(1)},${y(r[key]).toFixed(1)}`).join(' ')
      parts.push(node('polyline', { points: line, class: key === 'messagesIn' ? 'in' : 'out' }))
    }
    svg.replaceChildren(...parts)
    $('chart-span').textContent = minutes
  }

  function clients(list) {
    $('clients-count').textContent = `(${list.length})`
    fill($('clients-body'), list.map((c) => {
      const subs = c.subscriptions
      const shown = el('span', subs.slice(0, 5).join(', ') + (subs.length > 5 ? ` +${subs.length - 5} more` : ''))
      shown.title = subs.join('\n')
      // A persistent session whose client is away still holds subscriptions and queued messages.
      return row([c.clientId, c.connected ? c.address ?? '–' : badge('offline', 'warn'), c.listener ?? '–', c.protocol || '–', shown,
        String(c.queued), String(c.inflight)], c.connected ? '' : 'offline')
    }), 7, 'No clients')
  }

  function serial(ports, now) {
    const out = ports.map((p) => {
      const box = el('div', undefined, 'port')
      const title = el('h3', p.port + ' ')
      title.append(badge(p.state, p.state === 'open' ? 'ok' : p.state === 'failed' ? 'bad' : 'warn'))
      box.append(title, el('p', `${p.path ?? 'no path'} · ${num(p.framesPerSecond)} frames/s · ${p.frames} frames · ${p.errors} errors`, 'muted'))
      if (p.detail) box.append(el('p', p.detail, 'detail'))
      const body = el('tbody')
      fill(body, p.devices.map((d) => {
        const r = d.lastReading
        return row([d.device, badge(d.online ? 'online' : 'offline', d.online ? 'ok' : 'bad'),
          r ? r.topic : '–', r ? cut(r.payload, 200) : '–', r ? duration((now - r.at) / 1000) + ' ago' : '–'])
      }), 5, 'No device has said hello yet')
      const head = el('tr')
      for (const h of ['Device', 'Status', 'Last reading', 'Payload', 'Age']) head.append(el('th', h))
      const table = el('table')
      table.append(el('thead'), body)
      table.firstChild.append(head)
      const scroll = el('div', undefined, 'scroll')
      scroll.append(table)
      box.append(scroll)
      return box
    })
    $('serial-list').replaceChildren(...(out.length > 0 ? out : [el('p', 'No serial ports configured', 'muted')]))
  }

  function bridges(list) {
    fill($('bridges-body'), list.map((b) => row([b.name, b.url, badge(b.state, b.state === 'connected' ? 'ok' : 'warn'),
      `${b.backlogMessages} msgs, ${bytes(b.backlogBytes)}`, b.oldestAgeSeconds === null ? '–' : duration(b.oldestAgeSeconds),
      num(b.drainRate) + ' msg/s'])), 6, 'No upstream bridges configured')
  }

  function store(s) {
    const meter = $('store-meter')
    meter.max = s.maxBytes > 0 ? s.maxBytes : Math.max(s.diskBytes, 1)
    meter.value = s.diskBytes
    meter.hidden = s.maxBytes === 0
    facts('store-list', [
      ['Disk used', s.maxBytes > 0 ? `${bytes(s.diskBytes)} of ${bytes(s.maxBytes)} (${Math.round((s.diskBytes / s.maxBytes) * 100)}%)` : `${bytes(s.diskBytes)} (no cap)`],
      ['Queued', bytes(s.queuedBytes)],
      ['Retained messages', String(s.retainedCount)],
      ['Data dir', s.dataDir],
    ])
  }

  function health(h) {
    const top = $('health-badge')
    top.textContent = h.wedged ? 'wedged' : h.healthy ? 'healthy' : 'unhealthy'
    top.className = 'badge ' + (h.wedged ? 'bad' : h.healthy ? 'ok' : 'warn')
    $('health-list').replaceChildren(...h.components.map((c) => {
      const li = el('li')
      li.append(badge(c.wedged ? 'wedged' : c.ok ? 'ok' : 'not ok', c.wedged ? 'bad' : c.ok ? 'ok' : 'warn'), ' ', el('strong', c.component))
      if (c.detail) li.append(' ', el('span', c.detail, 'muted'))
      return li
    }))
  }

  function retained(list, count) {
    $('retained-count').textContent = list.length < count ? `(showing ${list.length} of ${count})` : `(${count})`
    fill($('retained-body'), list.map((r) => row([r.topic, String(r.bytes), cut(r.preview, 120)])), 3, 'No retained messages')
  }

  function log(lines) {
    fill($('log-body'), lines.slice().reverse().map((l) => {
      const t = Date.parse(l.time)
      return row([Number.isNaN(t) ? l.time : clock(t), l.level, l.component ?? '', l.clientId ?? '', l.msg], 'level-' + l.level)
    }), 5, 'Nothing logged yet')
  }

  function render(s) {
    overview(s)
    chart(s.rates, s.now)
    health(s.health)
    store(s.store)
    clients(s.clients)
    serial(s.serial, s.now)
    bridges(s.bridges)
    retained(s.retained, s.store.retainedCount)
    log(s.log)
  }

  function showError(message) {
    const box = $('error')
    box.textContent = message + (lastOk ? ` Showing data from ${clock(lastOk)}.` : '')
    box.hidden = false
    document.body.classList.add('stale')
  }

  async function poll() {
    if (busy) return
    busy = true
    clearTimeout(timer)
    try {
      const res = await fetch('/api/state', { cache: 'no-store', headers: { accept: 'application/json' } })
      // A lapsed session: 401, or a redirect that fetch followed to the login form.
      if (res.status === 401 || (res.redirected && new URL(res.url).pathname === '/login')) {
        location.assign('/login')
        return
      }
      if (!res.ok) throw new Error(`the server answered ${res.status} ${res.statusText}`)
      render(await res.json())
      lastOk = Date.now()
      $('updated').textContent = 'updated ' + clock(lastOk)
      $('error').hidden = true
      document.body.classList.remove('stale')
    } catch (err) {
      showError(`Update failed: ${err instanceof Error ? err.message : String(err)}.`)
    } finally {
      busy = false
    }
    // Chained rather than setInterval, so a slow answer never stacks requests; a hidden tab waits.
    if (!document.hidden) timer = setTimeout(poll, POLL_MS)
  }

  document.addEventListener('visibilitychange', () => { if (!document.hidden) poll() })
  $('logout').addEventListener('click', () => {
    fetch('/logout', { method: 'POST' }).catch(() => undefined).finally(() => location.assign('/login'))
  })
  poll()
})()
