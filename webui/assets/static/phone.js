// moh admin page: the telephone line card. "Hear as callers will" plays
// the live telephone signal (GET /api/v1/stream/slin: the same 8 kHz
// samples RTP, SIP calls and the other streams carry, not a rendering of
// a track) through Web Audio; the installer's test tone is started and
// stopped here (POST /api/v1/player/tone). Vanilla JS, no CDN; data goes
// into the page with textContent only.
'use strict';
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);

  // Levels on the phone line are in dBm0 (ITU-T G.711): a full-scale sine
  // is +3.17 dBm0. slin is 16-bit, so a sine of peak 32767 reads +3.17.
  const FULL_SCALE_DBM0 = 3.17;
  const FULL_SCALE_RMS = 32767 / Math.SQRT2;
  const RATE = 8000;
  // Jitter buffer: audio is scheduled this far ahead of the audio clock,
  // so a late chunk over Wi-Fi does not click; more than MAX_AHEAD queued
  // (the tab was in the background) is dropped to stay live.
  const LEAD = 0.3;
  const MAX_AHEAD = 1.5;

  function errorOf(resp, data) {
    if (data && data.error) return data.error.message;
    return 'mohd answered with an error (HTTP ' + resp.status + ').';
  }

  // ---- live telephone signal ----------------------------------------------

  let live = null;

  function setLiveState(text, cls) {
    const s = $('live-state');
    s.textContent = text;
    s.className = cls || 'muted';
  }

  // dominantHz is the analyser's strongest frequency (the signal as the
  // page's audio graph plays it), or 0 in silence.
  function dominantHz(an, bins) {
    an.getFloatFrequencyData(bins);
    let best = 0, bestDB = -Infinity;
    for (let i = 2; i < bins.length; i++) {
      if (bins[i] > bestDB) { bestDB = bins[i]; best = i; }
    }
    if (bestDB < -90) return 0;
    // Parabolic interpolation between the neighbouring bins: the bin
    // width at 8 kHz / 2048 is 3.9 Hz, this reads a tone to ~0.5 Hz.
    let off = 0;
    if (best > 0 && best < bins.length - 1) {
      const a = bins[best - 1], b = bins[best], c = bins[best + 1];
      const d = a - 2 * b + c;
      if (d < 0) off = 0.5 * (a - c) / d;
    }
    return (best + off) * an.context.sampleRate / an.fftSize;
  }

  async function startLive() {
    const btn = $('live-btn');
    btn.disabled = true;
    let ctx;
    try {
      // The graph runs at the signal's own rate, so the samples played
      // are the samples sent; the browser resamples for the sound card.
      ctx = new AudioContext({ sampleRate: RATE, latencyHint: 'playback' });
    } catch (e) {
      ctx = new AudioContext({ latencyHint: 'playback' });
    }
    const an = ctx.createAnalyser();
    an.fftSize = 2048;
    an.smoothingTimeConstant = 0.5;
    an.connect(ctx.destination);
    const abort = new AbortController();
    const l = { ctx, an, abort, next: 0, sum: 0, n: 0, timer: 0, bins: new Float32Array(an.frequencyBinCount) };
    live = l;
    let resp;
    try {
      await ctx.resume();
      resp = await fetch('/api/v1/stream/slin', { credentials: 'same-origin', cache: 'no-store', signal: abort.signal });
    } catch (e) {
      stopLive(abort.signal.aborted ? '' : 'mohd is not answering: nothing to listen to.');
      return;
    }
    if (resp.status === 401) {
      window.location.assign('/login');
      return;
    }
    if (!resp.ok) {
      let data = null;
      try { data = await resp.json(); } catch (e) { /* not JSON */ }
      stopLive('Cannot listen: ' + errorOf(resp, data));
      return;
    }
    btn.textContent = 'Stop listening';
    btn.disabled = false;
    btn.classList.add('on');
    setLiveState('Connecting…');
    l.timer = setInterval(() => showLevel(l), 1000);
    const reader = resp.body.getReader();
    let odd = null; // a byte of a sample split across two chunks
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        let bytes = value;
        if (odd !== null) {
          bytes = new Uint8Array(value.length + 1);
          bytes[0] = odd;
          bytes.set(value, 1);
          odd = null;
        }
        const n = bytes.length >> 1;
        if (bytes.length & 1) odd = bytes[bytes.length - 1];
        if (n === 0) continue;
        play(l, new DataView(bytes.buffer, bytes.byteOffset, n * 2), n);
      }
    } catch (e) {
      if (live === l && !abort.signal.aborted) stopLive('The stream broke off: mohd is not answering.');
      return;
    }
    if (live === l) stopLive('The stream ended (mohd restarted?). Press again to listen.');
  }

  // play schedules n little-endian 16-bit samples after the ones before.
  function play(l, view, n) {
    const buf = l.ctx.createBuffer(1, n, RATE);
    const ch = buf.getChannelData(0);
    for (let i = 0; i < n; i++) {
      const v = view.getInt16(i * 2, true);
      ch[i] = v / 32768;
      l.sum += v * v;
    }
    l.n += n;
    const now = l.ctx.currentTime;
    if (l.next < now || l.next > now + MAX_AHEAD) l.next = now + LEAD;
    const src = l.ctx.createBufferSource();
    src.buffer = buf;
    src.connect(l.an);
    src.start(l.next);
    l.next += buf.duration;
  }

  // showLevel says what the line carried in the last second: its level,
  // measured on the samples received, and its strongest frequency, read
  // by the analyser from what the page plays.
  function showLevel(l) {
    if (l.n === 0) {
      setLiveState('Listening live: no signal received in the last second.', 'error-text');
      return;
    }
    const rms = Math.sqrt(l.sum / l.n);
    l.sum = 0;
    l.n = 0;
    const el = $('live-state');
    if (rms < 1) {
      setLiveState('Listening live: the line is silent.', 'error-text');
      el.dataset.dbm0 = '';
      el.dataset.hz = '0';
      return;
    }
    const dbm0 = 20 * Math.log10(rms / FULL_SCALE_RMS) + FULL_SCALE_DBM0;
    const hz = dominantHz(l.an, l.bins);
    el.dataset.dbm0 = dbm0.toFixed(2);
    el.dataset.hz = hz.toFixed(1);
    setLiveState('Listening live: ' + dbm0.toFixed(1) + ' dBm0 on the line' +
      (hz > 0 ? ', strongest at ' + Math.round(hz) + ' Hz' : '') + '.');
  }

  function stopLive(msg) {
    const l = live;
    live = null;
    if (l) {
      clearInterval(l.timer);
      l.abort.abort();
      l.ctx.close().catch(() => {});
    }
    const btn = $('live-btn');
    btn.textContent = 'Hear as callers will';
    btn.disabled = false;
    btn.classList.remove('on');
    const el = $('live-state');
    delete el.dataset.dbm0;
    delete el.dataset.hz;
    if (msg) setLiveState(msg, 'error-text');
    else setLiveState('');
  }

  // ---- test tone -----------------------------------------------------------

  let toneEnd = 0; // Date.now() when the music resumes; 0: no tone
  let toneTimer = 0;
  let toneWhat = '';
  let toneSeq = 0; // bumped by this page's own changes, so an older poll answer is not shown over them

  function renderTone() {
    const st = $('tone-state');
    const left = Math.ceil((toneEnd - Date.now()) / 1000);
    if (toneEnd && left > 0) {
      st.textContent = 'Test tone playing (' + toneWhat + ') on every output — music resumes in ' + left + ' s.';
      st.className = 'tone-state playing';
      $('tone-stop').classList.remove('hidden');
      return;
    }
    if (toneEnd) st.textContent = 'The test tone ended; the music plays again.';
    toneEnd = 0;
    clearInterval(toneTimer);
    st.className = 'tone-state';
    $('tone-stop').classList.add('hidden');
  }

  async function postTone(body) {
    let resp;
    try {
      resp = await fetch('/api/v1/player/tone', {
        method: 'POST', credentials: 'same-origin', signal: AbortSignal.timeout(10000),
        headers: { 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch (e) {
      throw new Error('mohd is not answering, so the tone may not have changed. Try again once the page shows mohd is back.');
    }
    if (resp.status === 401) {
      window.location.assign('/login');
      throw new Error('logged out');
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { /* not JSON */ }
    if (!resp.ok) throw new Error(errorOf(resp, data));
    return data;
  }

  function toneError(msg) {
    const st = $('tone-state');
    st.textContent = msg;
    st.className = 'tone-state error-text';
  }

  async function startTone() {
    const dbm0 = parseFloat($('tone-dbm0').value);
    const seconds = parseFloat($('tone-seconds').value);
    if (!Number.isFinite(dbm0) || !Number.isFinite(seconds) || seconds < 1) {
      toneError('Give the level in dBm0 (e.g. -19) and the duration in seconds (1 to 600).');
      return;
    }
    $('tone-btn').disabled = true;
    toneSeq++;
    try {
      const a = await postTone({ hz: 1000, dbm0, seconds });
      // The countdown runs on this browser's clock from the answer's
      // duration: the box's clock may differ from the browser's.
      showTone(a, a.seconds);
    } catch (e) {
      if (e.message !== 'logged out') toneError('Test tone: ' + e.message);
    }
    $('tone-btn').disabled = false;
  }

  async function stopTone() {
    toneSeq++;
    try {
      await postTone({ seconds: 0 });
      toneEnd = 1; // in the past: renderTone says the tone ended
      renderTone();
    } catch (e) {
      if (e.message !== 'logged out') toneError('Stop tone: ' + e.message);
    }
  }

  // showTone shows a tone the box says plays (GET /api/v1/player/tone):
  // one started from another page, or before this page was loaded.
  function showTone(a, secondsLeft) {
    toneEnd = Date.now() + secondsLeft * 1000;
    toneWhat = a.hz + ' Hz at ' + a.dbm0.toFixed(1) + ' dBm0, ' + a.dbfs.toFixed(1) + ' dBFS';
    clearInterval(toneTimer);
    toneTimer = setInterval(renderTone, 250);
    renderTone();
  }

  async function pollTone() {
    const seq = toneSeq;
    try {
      const resp = await fetch('/api/v1/player/tone', { credentials: 'same-origin', cache: 'no-store', signal: AbortSignal.timeout(4000) });
      if (!resp.ok) return;
      const a = await resp.json();
      if (seq !== toneSeq) return;
      if (a.playing) showTone(a, a.seconds_left);
      else if (toneEnd > 1) {
        // ended early, from another page
        toneEnd = 1;
        renderTone();
      }
    } catch (e) { /* the status poll says when mohd is away */ }
  }

  $('live-btn').addEventListener('click', () => (live ? stopLive('') : startLive()));
  $('tone-btn').addEventListener('click', startTone);
  $('tone-stop').addEventListener('click', stopTone);
  pollTone();
  setInterval(() => { if (!document.hidden) pollTone(); }, 3000);
})();
