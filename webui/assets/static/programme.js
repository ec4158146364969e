// moh admin page, the programme card: what plays now and next, the
// override button with its confirmation, the playlists (drag a track to
// reorder), the week's rules and the holidays. Like app.js: vanilla JS,
// data into the page with textContent only.
'use strict';
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  if (!$('programme')) return;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  async function api(method, path, body) {
    const opts = { method, headers: { 'X-CSRF-Token': csrf }, credentials: 'same-origin', signal: AbortSignal.timeout(20000) };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const resp = await fetch(path, opts);
    if (resp.status === 204) return null;
    let data = null;
    try { data = await resp.json(); } catch (e) { /* not JSON */ }
    if (!resp.ok) throw new Error(data && data.error ? data.error.message : 'mohd answered with an error (HTTP ' + resp.status + ').');
    return data;
  }

  function say(msg) {
    const p = $('prog-error');
    p.textContent = msg;
    p.classList.toggle('hidden', !msg);
  }

  let tracks = [];     // the library, for names
  let playlists = [];
  const nameOf = (id) => { const t = tracks.find((x) => x.id === id); return t ? t.name : id; };

  // The next change's time as the box's admin reads it: 18:00 today,
  // "Sat 08:00" another day (24-hour, whatever the browser's locale).
  function hhmm(iso) {
    const d = new Date(iso);
    const time = String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
    if (d.toDateString() === new Date().toDateString()) return time;
    return ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getDay()] + ' ' + time;
  }

  // "now: business-hours (Mon–Fri 08:00–18:00) · next: after-hours at 18:00"
  function renderNow(p) {
    const line = $('programme-now');
    if (!p) { line.textContent = 'now: —'; return; }
    let now = p.track ? 'track ' + nameOf(p.track) : p.playlist;
    if (p.rule && p.reason !== 'override') now = p.rule;
    else if (p.reason === 'override') now = 'override: ' + now;
    else if (p.reason === 'default') now = p.playlist + ' (default)';
    let text = 'now: ' + now;
    if (p.next_change) text += ' · next: ' + (p.next_track ? 'track ' + nameOf(p.next_track) : p.next_playlist) + ' at ' + hhmm(p.next_change);
    line.textContent = text;
    line.dataset.reason = p.reason;
    $('override-clear').classList.toggle('hidden', p.reason !== 'override');
  }

  async function pollNow() {
    try {
      const st = await api('GET', '/api/v1/status');
      renderNow(st.programme);
    } catch (e) { /* app.js shows the outage */ }
    setTimeout(pollNow, 2000);
  }

  function fillOverrideChoices() {
    const sel = $('override-what');
    const keep = sel.value;
    sel.textContent = '';
    for (const t of tracks) { const o = el('option', '', 'track: ' + t.name); o.value = 'track:' + t.id; sel.append(o); }
    for (const p of playlists) { const o = el('option', '', 'playlist: ' + p.name); o.value = 'playlist:' + p.name; sel.append(o); }
    if (keep) sel.value = keep;
  }

  function askOverride() {
    const v = $('override-what').value;
    if (!v) return;
    $('override-question').textContent = 'Callers will hear ' + $('override-what').selectedOptions[0].textContent +
      ' now, instead of the schedule' + ($('override-until').value ? ', until ' + new Date($('override-until').value).toLocaleString() : ', until you clear it') + '. Play it now?';
    $('override-confirm').classList.remove('hidden');
    $('override-yes').focus();
  }

  async function sendOverride() {
    $('override-confirm').classList.add('hidden');
    const v = $('override-what').value;
    const i = v.indexOf(':');
    const body = {};
    body[v.slice(0, i)] = v.slice(i + 1);
    if ($('override-until').value) body.until = new Date($('override-until').value).toISOString();
    try {
      await api('PUT', '/api/v1/override', body);
      say('');
    } catch (e) { say(e.message); }
    pollNowOnce();
  }

  async function clearOverride() {
    try { await api('DELETE', '/api/v1/override'); say(''); } catch (e) { say(e.message); }
    pollNowOnce();
  }

  async function pollNowOnce() {
    try { renderNow((await api('GET', '/api/v1/status')).programme); } catch (e) { /* next poll */ }
  }

  // Drag a track within its playlist; the new order is saved on drop.
  function renderPlaylists() {
    const box = $('playlists');
    box.textContent = '';
    for (const p of playlists) {
      const li = el('li', 'playlist');
      const head = el('div', 'playlist-head', p.name);
      if (p.message) head.append(el('span', 'muted', ' · message ' + nameOf(p.message.track) + ' every ' + p.message.every_minutes + ' min' + (p.message.interrupt ? ' (interrupts)' : '')));
      li.append(head);
      const ol = el('ol', 'tracks');
      ol.dataset.playlist = p.name;
      p.tracks.forEach((id) => {
        const t = el('li', 'drag', nameOf(id));
        t.draggable = true;
        t.dataset.id = id;
        t.addEventListener('dragstart', (ev) => { ev.dataTransfer.setData('text/plain', id); t.classList.add('dragging'); });
        t.addEventListener('dragend', () => t.classList.remove('dragging'));
        t.addEventListener('dragover', (ev) => ev.preventDefault());
        t.addEventListener('drop', (ev) => { ev.preventDefault(); dropOn(p, ev.dataTransfer.getData('text/plain'), id); });
        ol.append(t);
      });
      li.append(ol);
      box.append(li);
    }
  }

  async function dropOn(p, moved, before) {
    if (!moved || moved === before) return;
    const order = p.tracks.filter((id) => id !== moved);
    const at = order.indexOf(before);
    if (at < 0) return;
    order.splice(at, 0, moved);
    try {
      await api('PUT', '/api/v1/playlists/' + encodeURIComponent(p.name), { name: p.name, tracks: order, message: p.message });
      say('');
    } catch (e) { say(e.message); }
    load();
  }

  const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
  function renderSchedule(s) {
    $('schedule-zone').textContent = s.timezone + ' · default: ' + s.default;
    const row = $('week-row');
    row.textContent = '';
    for (const d of DAYS) {
      const td = el('td');
      for (const r of s.rules.filter((r) => r.days.includes(d))) {
        td.append(el('div', 'rule', r.from + '–' + r.to + ' ' + (r.name ? r.name + ' → ' : '') + r.playlist));
      }
      row.append(td);
    }
    const ul = $('holidays');
    ul.textContent = '';
    for (const e of s.exceptions) {
      ul.append(el('li', '', (e.name ? e.name + ': ' : '') + e.from + (e.to && e.to !== e.from ? ' – ' + e.to : '') + (e.yearly ? ' (every year)' : '') + ' → ' + e.playlist));
    }
    if (!s.exceptions.length) ul.append(el('li', 'muted', 'none'));
  }

  async function load() {
    try {
      const [tl, pl, sc] = await Promise.all([api('GET', '/api/v1/tracks'), api('GET', '/api/v1/playlists'), api('GET', '/api/v1/schedule')]);
      tracks = tl.tracks || [];
      playlists = pl.playlists || [];
      renderPlaylists();
      renderSchedule(sc);
      fillOverrideChoices();
    } catch (e) { say(e.message); }
  }

  $('override-btn').addEventListener('click', askOverride);
  $('override-yes').addEventListener('click', sendOverride);
  $('override-cancel').addEventListener('click', () => $('override-confirm').classList.add('hidden'));
  $('override-clear').addEventListener('click', clearOverride);
  load();
  pollNow();
})();
