// moh admin page. Vanilla JS, no framework, no CDN: the box may have no
// internet. All data goes into the page with textContent, never as HTML.
'use strict';
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function button(text, cls, onClick) {
    const b = el('button', cls, text);
    b.type = 'button';
    b.addEventListener('click', onClick);
    return b;
  }

  let errorTimer = 0;
  function showError(msg) {
    const p = $('page-error');
    p.textContent = msg;
    p.classList.remove('hidden');
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => p.classList.add('hidden'), 8000);
  }

  // The sentences the page shows when mohd does not answer. The browser's
  // own words ("Failed to fetch", "NetworkError…") mean nothing to an admin.
  const OUTAGE = 'mohd is not answering — the page retries by itself; callers may hear silence.';
  const NOT_DONE = 'mohd is not answering, so this may not have been done. Try again once the page shows mohd is back.';

  // api calls the JSON API with the session's CSRF token. It throws an
  // Error carrying the server's message; a lost session goes to the login.
  // When no answer comes back (mohd down, network gone, or no answer
  // within timeoutMs) the Error has unreachable set and a plain message.
  async function api(method, path, body, timeoutMs) {
    const opts = {
      method, headers: { 'X-CSRF-Token': csrf }, credentials: 'same-origin',
      signal: AbortSignal.timeout(timeoutMs || 20000),
    };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      throw unreachable();
    }
    if (resp.status === 401) {
      window.location.assign('/login');
      throw new Error('logged out');
    }
    if (resp.status === 204) return null;
    let data = null;
    try { data = await resp.json(); } catch (e) { /* not JSON */ }
    // A proxy in front of the box answers 502..504 without mohd's error
    // shape when mohd is not there: that is mohd not answering too.
    if (!resp.ok && !(data && data.error) && resp.status >= 502 && resp.status <= 504) throw unreachable();
    if (!resp.ok) {
      const err = new Error(data && data.error ? data.error.message : 'mohd answered with an error (HTTP ' + resp.status + ').');
      err.code = data && data.error ? data.error.code : '';
      throw err;
    }
    return data;
  }

  function unreachable() {
    const err = new Error(NOT_DONE);
    err.unreachable = true;
    // Say so at once rather than at the next poll, and look again now.
    pollSoon();
    return err;
  }

  function fmtTime(ns) {
    if (!ns || ns < 0) return '0:00';
    const s = Math.floor(ns / 1e9);
    const m = Math.floor(s / 60);
    return m + ':' + String(s % 60).padStart(2, '0');
  }

  function fmtBytes(b) {
    if (b >= 1 << 30) return (b / (1 << 30)).toFixed(1) + ' GiB';
    return (b / (1 << 20)).toFixed(0) + ' MiB';
  }

  function fmtUptime(s) {
    s = Math.floor(s || 0);
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    return (d ? d + 'd ' : '') + h + 'h ' + m + 'm';
  }

  // ---- now playing -------------------------------------------------------

  let onAirID = '';
  let volumeBusy = false;

  // renderHealth shows mohd's own verdict (status.health): a banner while
  // callers hear silence — red for a fault, amber when it is on purpose —
  // or while playback is degraded; nothing when all is well.
  function renderHealth(h) {
    const b = $('health');
    if (!h || !h.state || h.state === 'ok') {
      b.className = 'banner hidden';
      b.textContent = '';
      return;
    }
    const reason = h.reason || h.state;
    let text;
    if (h.silent) text = 'Callers hear silence: ' + reason;
    else if (h.state === 'critical') text = 'Fault: ' + reason;
    else text = 'Degraded: ' + reason;
    b.className = 'banner ' + (h.state === 'critical' ? 'critical' : 'warning');
    b.textContent = text;
  }

  function renderStatus(st) {
    setReachable(true);
    renderHealth(st.health);
    const state = $('state');
    state.textContent = st.state + (st.wanted && st.wanted !== st.state ? ' (wanted: ' + st.wanted + ')' : '');
    state.className = 'badge ' + st.state;
    let name = st.track ? st.track.name : '—';
    if (st.fallback) name += ' (built-in track: the playlist is empty)';
    $('track-name').textContent = name;
    const pos = $('position');
    pos.max = Math.max(st.duration_ns || 0, 1);
    pos.value = Math.min(st.position_ns || 0, pos.max);
    $('position-text').textContent = fmtTime(st.position_ns) + ' / ' + fmtTime(st.duration_ns);
    // -60 dBFS .. 0 dBFS across the meter. While health says callers hear
    // silence the last level measured is not what they hear: show none.
    const silent = !!(st.health && st.health.silent);
    const db = typeof st.level_dbfs === 'number' && !silent ? st.level_dbfs : -120;
    const pct = Math.max(0, Math.min(100, (db + 60) / 60 * 100));
    $('level').style.width = pct.toFixed(1) + '%';
    $('level-text').textContent = db <= -119 ? 'silence' : db.toFixed(1) + ' dBFS';
    $('fault').textContent = st.fault || '';
    if (!volumeBusy && document.activeElement !== $('volume')) {
      $('volume').value = st.volume;
      $('volume-value').textContent = st.volume;
    }
    $('backend').textContent = st.backend + (st.audio_flowing ? ', audio flowing' : ', NO AUDIO');
    $('uptime').textContent = fmtUptime(st.uptime_s);
    const wd = st.watchdog || {};
    $('recoveries').textContent = String(wd.recoveries || 0) +
      (wd.last_fault ? ' (last: ' + wd.last_fault.message + ')' : '');
    if (st.disk) {
      $('disk').textContent = fmtBytes(st.disk.free_bytes) + ' free of ' + fmtBytes(st.disk.total_bytes) +
        (st.disk.warning ? ' — ' + (st.disk.message || 'running low') : '');
      $('disk').classList.toggle('error-text', !!st.disk.warning);
    }
    const id = st.track ? st.track.id : '';
    if (id !== onAirID) {
      onAirID = id;
      markOnAir();
    }
  }

  function markOnAir() {
    for (const li of $('tracks').children) li.classList.toggle('on-air', li.dataset.id === onAirID);
  }

  // ---- reachability ------------------------------------------------------

  // While mohd does not answer, the page must not show its last answer as
  // if it were current: the badge goes red, the live values (level,
  // position, "audio flowing") are cleared, the rest is greyed, the player
  // controls are disabled and a banner says what is going on.
  let reachable = true;
  let lastAnswer = null;

  function setReachable(ok) {
    if (ok) lastAnswer = new Date();
    if (ok === reachable) return;
    reachable = ok;
    document.body.classList.toggle('offline', !ok);
    $('player-controls').disabled = !ok;
    if (ok) {
      // An action's "mohd is not answering" is out of date now. The status
      // being rendered fills everything else in again.
      const pe = $('page-error');
      if (pe.textContent.includes('mohd is not answering')) pe.classList.add('hidden');
      return;
    }
    cancelStop();
    const state = $('state');
    state.textContent = 'unreachable';
    state.className = 'badge unreachable';
    $('level').style.width = '0%';
    $('level-text').textContent = 'level unknown';
    $('fault').textContent = '';
    $('position').value = 0;
    $('position-text').textContent = '';
    $('backend').textContent = 'unknown: mohd is not answering';
    const b = $('health');
    b.className = 'banner critical';
    b.textContent = OUTAGE + (lastAnswer ? ' Last answer at ' + lastAnswer.toLocaleTimeString() + '.' : '');
  }

  // The status is polled about four times a second for the position and
  // the level meter; a slow answer delays the next poll instead of piling
  // up. When mohd stops answering the poll backs off (0.5 s doubling to
  // 5 s) but never stops, so the page recovers by itself. One lost answer
  // is not yet an outage: a restarting mohd or a dropped packet is.
  let pollFailures = 0;
  let pollTimer = 0;
  let polling = false;

  async function pollStatus() {
    clearTimeout(pollTimer);
    polling = true;
    let delay = document.hidden ? 2000 : 250;
    try {
      renderStatus(await api('GET', '/api/v1/status', undefined, 4000));
      pollFailures = 0;
    } catch (e) {
      if (e.message === 'logged out') return;
      pollFailures++;
      if (pollFailures >= 2) setReachable(false);
      delay = Math.min(250 * 2 ** pollFailures, 5000);
    }
    polling = false;
    pollTimer = setTimeout(pollStatus, delay);
  }

  // pollSoon looks at the status now unless a look is already under way.
  function pollSoon() {
    if (polling) return;
    clearTimeout(pollTimer);
    pollTimer = setTimeout(pollStatus, 0);
  }

  async function control(what, label) {
    try {
      renderStatus(await api('POST', '/api/v1/player/' + what));
      loadEvents();
    } catch (e) {
      showError(label + ': ' + (e.unreachable ? 'mohd is not answering, so it may not have happened. Try again once the page shows mohd is back.' : e.message));
    }
  }

  // Stop asks first, in place (a dialog is easy to tap through on a
  // phone): the phone line goes silent until someone presses Play.
  function askStop() {
    $('controls').classList.add('hidden');
    $('stop-confirm').classList.remove('hidden');
    $('btn-stop-cancel').focus();
  }

  function cancelStop() {
    $('stop-confirm').classList.add('hidden');
    $('controls').classList.remove('hidden');
  }

  let volumeTimer = 0;
  async function sendVolume() {
    const v = parseInt($('volume').value, 10);
    try {
      const r = await api('PUT', '/api/v1/volume', { volume: v });
      $('volume-value').textContent = r.volume;
    } catch (e) { showError(e.message); }
    volumeBusy = false;
  }

  // ---- playlist ----------------------------------------------------------

  let tracks = [];

  function trackMeta(t) {
    const parts = [fmtTime(t.duration_ns)];
    if (typeof t.loudness_before_lufs === 'number') {
      parts.push('loudness ' + t.loudness_before_lufs.toFixed(1) + ' → ' + t.loudness_after_lufs.toFixed(1) + ' LUFS');
    }
    if (t.detail) parts.push(t.detail);
    return parts.join(' · ');
  }

  function renderTracks() {
    const ol = $('tracks');
    ol.replaceChildren();
    $('track-count').textContent = '(' + tracks.length + ')';
    tracks.forEach((t, i) => {
      const li = el('li');
      li.dataset.id = t.id;
      li.appendChild(el('span', 'track-name', t.name));
      const actions = el('span', 'actions');
      const up = button('↑', 'small plain move-up', () => move(i, -1));
      up.title = 'Move up';
      up.disabled = i === 0;
      const down = button('↓', 'small plain move-down', () => move(i, 1));
      down.title = 'Move down';
      down.disabled = i === tracks.length - 1;
      actions.append(up, down,
        button('Listen', 'small plain listen', () => preview(t, 'audio')),
        // The track through the phone band, before it is on air; the live
        // line itself is the telephone card's "Hear as callers will".
        button('Phone-band preview', 'small plain phone', () => preview(t, 'preview')),
        button('Delete', 'small danger delete', () => confirmDelete(li, t)));
      li.appendChild(actions);
      li.appendChild(el('span', 'track-meta', trackMeta(t)));
      ol.appendChild(li);
    });
    markOnAir();
  }

  async function loadTracks() {
    try {
      tracks = (await api('GET', '/api/v1/tracks')).tracks;
      renderTracks();
    } catch (e) { showError(e.message); }
  }

  async function move(i, dir) {
    const j = i + dir;
    if (j < 0 || j >= tracks.length) return;
    const order = tracks.map((t) => t.id);
    [order[i], order[j]] = [order[j], order[i]];
    try {
      tracks = (await api('PUT', '/api/v1/playlist', { order })).tracks;
    } catch (e) { showError(e.message); }
    renderTracks();
  }

  // Deleting asks in place rather than with a dialog: dialogs are easy to
  // tap through on a phone.
  function confirmDelete(li, t) {
    const actions = li.querySelector('.actions');
    const ask = el('span', 'actions confirm');
    ask.appendChild(el('span', 'error-text', 'Delete “' + t.name + '”?'));
    ask.append(
      button('Yes, delete', 'small danger confirm-delete', async () => {
        try {
          await api('DELETE', '/api/v1/tracks/' + encodeURIComponent(t.id));
        } catch (e) { showError(e.message); }
        loadTracks();
        loadEvents();
      }),
      button('Cancel', 'small plain', () => ask.replaceWith(actions)));
    actions.replaceWith(ask);
  }

  function preview(t, kind) {
    const a = $('preview-audio');
    a.classList.remove('hidden');
    a.src = '/api/v1/tracks/' + encodeURIComponent(t.id) + '/' + kind;
    a.title = (kind === 'preview' ? 'Phone-band preview: ' : '') + t.name;
    a.play().catch(() => { /* autoplay refused: the controls are there */ });
  }

  // ---- uploads -----------------------------------------------------------

  const queue = [];
  let uploading = false;

  function addFiles(files) {
    for (const f of files) {
      const li = el('li', 'pending');
      li.appendChild(el('div', 'name', f.name));
      const bar = el('progress');
      bar.max = 1;
      bar.value = 0;
      li.appendChild(bar);
      li.appendChild(el('div', 'upload-status', 'Waiting'));
      $('upload-list').prepend(li);
      queue.push({ file: f, li });
    }
    if (!uploading) nextUpload();
  }

  async function nextUpload() {
    const job = queue.shift();
    if (!job) {
      uploading = false;
      return;
    }
    uploading = true;
    await uploadOne(job.file, job.li);
    nextUpload();
  }

  const stageNames = {
    receiving: 'Receiving', decoding: 'Decoding', measuring: 'Measuring loudness',
    normalising: 'Normalising', encoding: 'Encoding', storing: 'Storing', done: 'Done',
  };

  // uploadOne sends one file: the bar shows the transfer first, then the
  // library's ingest progress, polled by the upload's id.
  function uploadOne(file, li) {
    return new Promise((resolve) => {
      const bar = li.querySelector('progress');
      const status = li.querySelector('.upload-status');
      const id = 'u' + Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
      let polling = 0;
      const setStatus = (cls, text) => {
        li.className = cls;
        status.textContent = text;
      };
      const poll = async () => {
        try {
          const u = await api('GET', '/api/v1/uploads/' + id);
          if (polling && !u.done) {
            bar.value = u.fraction || 0;
            setStatus('ingesting', (stageNames[u.stage] || u.stage) + (u.fraction ? ' ' + Math.round(u.fraction * 100) + ' %' : '…'));
          }
        } catch (e) { /* not started yet */ }
        if (polling) polling = setTimeout(poll, 300);
      };
      const xhr = new XMLHttpRequest();
      xhr.open('POST', '/api/v1/tracks');
      xhr.setRequestHeader('X-CSRF-Token', csrf);
      xhr.setRequestHeader('X-Upload-Id', id);
      xhr.upload.addEventListener('progress', (ev) => {
        if (!ev.lengthComputable) return;
        bar.value = ev.loaded / ev.total;
        setStatus('sending', 'Uploading ' + Math.round(ev.loaded / ev.total * 100) + ' %');
      });
      xhr.upload.addEventListener('load', () => {
        bar.value = 0;
        setStatus('ingesting', 'Processing…');
        polling = setTimeout(poll, 200);
      });
      xhr.addEventListener('load', () => {
        clearTimeout(polling);
        polling = 0;
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status === 201 || xhr.status === 200) {
          bar.value = 1;
          setStatus('done', xhr.status === 201 ? 'Added: ' + trackMeta(data) : 'Already in the library');
          loadTracks();
        } else if (xhr.status === 401) {
          window.location.assign('/login');
        } else {
          bar.value = 0;
          setStatus('refused', 'Refused: ' + (data && data.error ? data.error.message : 'HTTP ' + xhr.status));
        }
        resolve();
      });
      xhr.addEventListener('error', () => {
        clearTimeout(polling);
        polling = 0;
        setStatus('refused', 'Upload failed: mohd is not answering. Try again once the page shows mohd is back.');
        pollSoon();
        resolve();
      });
      const form = new FormData();
      form.append('file', file, file.name);
      setStatus('sending', 'Uploading 0 %');
      xhr.send(form);
    });
  }

  function setupDrop() {
    const drop = $('drop');
    ['dragenter', 'dragover'].forEach((t) => drop.addEventListener(t, (ev) => {
      ev.preventDefault();
      drop.classList.add('over');
    }));
    ['dragleave', 'drop'].forEach((t) => drop.addEventListener(t, () => drop.classList.remove('over')));
    drop.addEventListener('drop', (ev) => {
      ev.preventDefault();
      if (ev.dataTransfer && ev.dataTransfer.files.length) addFiles(ev.dataTransfer.files);
    });
    // A file dropped beside the zone must not navigate away from the page.
    window.addEventListener('dragover', (ev) => ev.preventDefault());
    window.addEventListener('drop', (ev) => ev.preventDefault());
    $('file-input').addEventListener('change', (ev) => {
      addFiles(ev.target.files);
      ev.target.value = '';
    });
  }

  // ---- events ------------------------------------------------------------

  async function loadEvents() {
    try {
      const evs = (await api('GET', '/api/v1/events?n=30')).events;
      const ul = $('events');
      ul.replaceChildren();
      if (!evs.length) ul.appendChild(el('li', 'muted', 'Nothing happened yet.'));
      for (const ev of evs) {
        const li = el('li', ev.kind);
        li.appendChild(el('span', 'muted', new Date(ev.time).toLocaleString() + ' '));
        li.appendChild(el('span', 'kind ' + ev.kind, ev.kind));
        let text = ev.message;
        if (ev.rung) text += ' (rung: ' + ev.rung + ')';
        if (ev.recovery_ms) text += ' — back after ' + (ev.recovery_ms / 1000).toFixed(1) + ' s';
        li.appendChild(el('span', '', text));
        ul.appendChild(li);
      }
    } catch (e) { /* shown by the status poll */ }
  }

  // ---- tokens ------------------------------------------------------------

  async function loadTokens() {
    try {
      const ts = (await api('GET', '/api/v1/tokens')).tokens;
      const tb = $('tokens');
      tb.replaceChildren();
      for (const t of ts) {
        const tr = el('tr');
        tr.dataset.id = t.id;
        tr.append(el('td', '', t.name || t.id), el('td', '', t.scope), el('td', '', new Date(t.created).toLocaleDateString()));
        const td = el('td');
        td.appendChild(button('Revoke', 'small danger revoke', () => {
          const ask = el('span');
          ask.append(
            button('Yes, revoke', 'small danger confirm-revoke', async () => {
              try { await api('DELETE', '/api/v1/tokens/' + encodeURIComponent(t.id)); } catch (e) { showError(e.message); }
              loadTokens();
            }),
            button('Cancel', 'small plain', () => loadTokens()));
          td.replaceChildren(ask);
        }));
        tr.appendChild(td);
        tb.appendChild(tr);
      }
    } catch (e) { showError(e.message); }
  }

  async function createToken(ev) {
    ev.preventDefault();
    try {
      const t = await api('POST', '/api/v1/tokens', { scope: $('token-scope').value, name: $('token-name').value });
      const p = $('new-token');
      p.textContent = 'New ' + t.scope + ' token (copy it now, it is not shown again): ' + t.token;
      p.classList.remove('hidden');
      $('token-name').value = '';
      loadTokens();
    } catch (e) { showError(e.message); }
  }

  // ---- start -------------------------------------------------------------

  $('btn-play').addEventListener('click', () => control('play', 'Play'));
  $('btn-stop').addEventListener('click', askStop);
  $('btn-stop-cancel').addEventListener('click', cancelStop);
  $('btn-stop-yes').addEventListener('click', () => {
    cancelStop();
    control('stop', 'Stop');
  });
  $('btn-next').addEventListener('click', () => control('next', 'Next'));
  $('volume').addEventListener('input', () => {
    volumeBusy = true;
    $('volume-value').textContent = $('volume').value;
    clearTimeout(volumeTimer);
    volumeTimer = setTimeout(sendVolume, 150);
  });
  $('volume').addEventListener('change', () => {
    clearTimeout(volumeTimer);
    sendVolume();
  });
  $('token-form').addEventListener('submit', createToken);
  setupDrop();
  pollStatus();
  loadTracks();
  loadEvents();
  loadTokens();
  setInterval(loadEvents, 5000);
})();
