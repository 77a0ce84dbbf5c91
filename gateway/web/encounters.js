// The encounters timeline: whom the selected person met, where, from when to
// when, kept up to date without a reload by the server's event stream
// (GET /api/persons/{id}/encounters/stream, Server-Sent Events).
//
// The stream is read with fetch(), not EventSource: EventSource cannot send
// the Authorization header, and the token must not go into a URL (where
// logs and history would keep it).  What the page shows is only what the
// server sent for this person; the server decides who may watch whom.
//
// Order of events and the list: the stream is opened first (the list is
// read once it has answered: it then holds its position), then the list
// is read; both carry each encounter's `version` (given in commit order),
// and an older version never replaces a newer one, so nothing that happens
// in between is lost or undone.  After a dropped connection the stream
// resumes after the last event id it received (Last-Event-ID).  An
// "erased" event is the stream's last: the person was erased, so it is
// not opened again (the server would answer 404), and onErased(person) is
// told.
import * as api from './api.js';

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 15000;

function hhmm(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso)
    : d.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

function duration(seconds) {
  const s = Math.round(Number(seconds) || 0);
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

export class EncounterTimeline {
  constructor(list, status) {
    this.list = list;
    this.status = status;
    this.items = new Map();        // id -> encounter
    this.removedAt = new Map();    // id -> version of its removal
    this.person = null;
    this.abort = null;
    this.lastEventId = '';
    this.gen = 0;
    this.onErased = null;          // (person) => ..., after an "erased" event
  }

  // Show `person`'s encounters and follow them live; a newer call wins.
  async show(person, nameOf) {
    this.stop();
    const gen = ++this.gen;
    this.person = person;
    this.nameOf = nameOf;
    this.items.clear();
    this.removedAt.clear();
    this.lastEventId = '';
    this.list.textContent = '';
    this.setStatus('loading', 'Loading encounters…');
    // the list is read once the stream holds its position (its answer has
    // come): a change made in between then comes by the stream
    await new Promise((ready) => this.follow(gen, ready));
    if (gen !== this.gen) return;
    try {
      let cursor = null;
      do {
        const page = await api.encountersPage(person.id, cursor);
        if (gen !== this.gen) return;
        for (const e of page.items) this.apply('encounter', e);
        cursor = page.next;
      } while (cursor);
      this.render();
    } catch (e) {
      if (gen !== this.gen) return;
      this.setStatus('error', `Could not load encounters: ${e.message}`);
    }
  }

  stop() {
    this.gen++;
    if (this.abort) this.abort.abort();
    this.abort = null;
  }

  setStatus(kind, text) {
    this.status.className = `status ${kind}`;
    this.status.textContent = text;
  }

  // An event or a listed encounter: a newer version wins, a removal removes.
  apply(kind, body) {
    const id = String(body.id);
    const cur = this.items.get(id);
    if (kind === 'removed') {
      const v = Number(body.version || 0);
      if (!cur || v === 0 || Number(cur.version) <= v) this.items.delete(id);
      this.removedAt.set(id, v);
      return;
    }
    if (cur && Number(cur.version) > Number(body.version)) return;
    const gone = this.removedAt.get(id);
    if (gone !== undefined && gone >= Number(body.version)) return;
    this.items.set(id, body);
  }

  render() {
    const ul = this.list;
    ul.textContent = '';
    const rows = [...this.items.values()].sort((a, b) =>
      a.started_at < b.started_at ? -1 : a.started_at > b.started_at ? 1 : Number(a.id) - Number(b.id));
    for (const e of rows) {
      const li = document.createElement('li');
      li.className = 'encounter';
      li.dataset.encounterId = e.id;
      const who = document.createElement('span');
      who.className = 'name';
      who.textContent = e.person ? `${e.person.first_name} ${e.person.last_name}` : 'someone';
      const where = document.createElement('span');
      where.className = 'where';
      where.textContent = e.place ? `at ${e.place.name}` : `near ${e.latitude.toFixed(5)}, ${e.longitude.toFixed(5)}`;
      const when = document.createElement('span');
      when.className = 'when';
      when.textContent = `${hhmm(e.started_at)} – ${hhmm(e.ended_at)} (${duration(e.duration_seconds)}, ${e.matches} ${e.matches === 1 ? 'match' : 'matches'})`;
      li.append(who, where, when);
      ul.appendChild(li);
    }
    const n = rows.length;
    const name = this.nameOf(this.person);
    this.setStatus('', n ? `${name} met ${n === 1 ? 'someone once' : `people ${n} times`}. Live: new encounters appear here.`
      : `No encounters for ${name} yet. Live: new ones appear here.`);
  }

  // Read the event stream until stopped; reconnect with back-off.  ready()
  // is called once: when the first stream answered, or failed to.
  async follow(gen, ready) {
    let wait = RETRY_MIN_MS;
    while (gen === this.gen) {
      const ctl = new AbortController();
      this.abort = ctl;
      try {
        const resp = await api.openEncounterStream(this.person.id, this.lastEventId, ctl.signal);
        if (ready) { ready(); ready = null; }
        wait = RETRY_MIN_MS;
        await this.read(resp, gen);
      } catch (e) {
        if (ready) { ready(); ready = null; }
        if (gen !== this.gen) return;
        if (e instanceof api.ApiError && e.status >= 400 && e.status < 500 && e.status !== 429) {
          this.setStatus('error', `Live updates stopped: ${e.message}`);
          return;
        }
      }
      if (gen !== this.gen) return;
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, RETRY_MAX_MS);
    }
  }

  async read(resp, gen) {
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done || gen !== this.gen) return;
      buf += value;
      let cut;
      while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
        this.event(block);
      }
    }
  }

  event(block) {
    let kind = 'message', id = null;
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line === '' || line.startsWith(':')) continue;     // heartbeat
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') kind = value;
      else if (field === 'id') id = value;
      else if (field === 'data') data.push(value);
    }
    if (id !== null) this.lastEventId = id;
    if (kind === 'erased') {
      const person = this.person;
      this.stop();
      this.items.clear();
      this.list.textContent = '';
      this.setStatus('error', `${this.nameOf(person)} was erased: there are no encounters to follow.`);
      if (this.onErased) this.onErased(person);
      return;
    }
    if (kind !== 'encounter' && kind !== 'removed') return;
    let body;
    try { body = JSON.parse(data.join('\n')); } catch (e) { return; }
    if (kind === 'removed' && id && body.version === undefined) body.version = Number(id.split('.')[0]);
    this.apply(kind, body);
    this.render();
  }
}
