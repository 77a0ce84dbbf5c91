// UdaConnect web app: sign-in from the badge link, persons, their
// encounters (live, encounters.js), their connections, an SVG plot, add a
// person, erase a person's data.
//
// Who may see or do what is the server's decision alone (it verifies the
// token on every call: 401 without a valid one, 403 with the database's
// reason when the caller may not).  The token's claims, decoded here without
// verification, only choose what the page shows: whose name is in the header
// and whether the person chooser lists everyone (organizer) or just the
// attendee themself.
import * as api from './api.js';
import { renderPlot } from './plot.js';
import { EncounterTimeline } from './encounters.js';

const $ = (sel) => document.querySelector(sel);
// gen: bumped on every (re)start and sign-out, so answers to requests of an
// earlier session are dropped; seq: a newer connection search wins.
const state = { persons: [], selected: null, seq: 0, gen: 0, attendee: null, erasing: false };
const timeline = new EncounterTimeline($('#encounters'), $('#encounters-status'));
// the signed-in attendee erased (by an organizer, or in another tab): signed
// out; an erasure this page asked for signs out with what went (erase())
timeline.onErased = (p) => {
  if (state.attendee && state.attendee.id === p.id && !state.erasing) {
    signOut('Your data was deleted: your person record and every location recorded for you. You are signed out.');
  }
};

function setStatus(node, kind, text) {
  node.className = 'status' + (kind ? ' ' + kind : '');
  node.textContent = text;
  node.setAttribute('aria-busy', kind === 'loading' ? 'true' : 'false');
}

const fullName = (p) => `${p.first_name} ${p.last_name}`;
const day = (ts) => (ts || '').slice(0, 10);
const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

// ---- signed in or not

// The sign-in page instead of the app: reason is the server's word on the
// token (or on its absence), done what an erasure removed.
function showSignIn(reason, done) {
  state.gen++;
  state.persons = [];
  state.selected = null;
  state.attendee = null;
  $('#app').hidden = true;
  $('#session').hidden = true;
  $('#signin').hidden = false;
  $('#signin-done').hidden = !done;
  $('#signin-done').textContent = done || '';
  setStatus($('#signin-reason'), reason ? 'error' : '', reason || '');
  $('#signin-reason').hidden = !reason;
}

// A 401 ends the session (the token expired, was revoked or never was):
// forget the token and say why.  Returns whether e was one.
function signedOutBy(e) {
  if (!(e instanceof api.ApiError) || e.status !== 401) return false;
  const had = api.getToken();
  api.setToken('');
  showSignIn(had ? `Your sign-in is no longer valid: ${e.message}`
                 : `This UdaConnect needs you to sign in (${e.message}).`);
  return true;
}

function failed(e, node, what) {
  if (signedOutBy(e)) return;
  const why = e.status === 403 && e.explain ? ` (${e.explain})` : '';
  setStatus(node, 'error', `${what}: ${e.message}${why}`);
}

function signOut(done) {
  api.setToken('');
  showSignIn('', done || 'You are signed out.');
}

function renderSession(claims) {
  const box = $('#session');
  if (!claims || !api.getToken()) {       // the server's auth is off, or no readable token
    box.hidden = true;
    return;
  }
  const role = claims.role === 'attendee' || claims.role === 'organizer' ? claims.role : 'unknown role';
  $('#session-name').textContent = state.attendee ? fullName(state.attendee)
    : claims.role === 'attendee' ? `person ${claims.sub}` : String(claims.sub || '?');
  $('#session-role').textContent = role;
  box.hidden = false;
}

// ---- persons

function renderPersons() {
  const ul = $('#persons');
  ul.textContent = '';
  for (const p of state.persons) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.personId = p.id;
    b.setAttribute('aria-pressed', String(state.selected && state.selected.id === p.id));
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = fullName(p);
    const company = document.createElement('span');
    company.className = 'company';
    company.textContent = p.company_name;
    b.append(name, company);
    b.addEventListener('click', () => selectPerson(p));
    li.appendChild(b);
    ul.appendChild(li);
  }
}

async function loadPersons() {
  const gen = state.gen;
  const st = $('#persons-status');
  setStatus(st, 'loading', 'Loading people…');
  try {
    const persons = await api.listPersons();
    if (gen !== state.gen) return;
    state.persons = persons;
    renderPersons();
    setStatus(st, '', state.persons.length ? '' : 'Nobody here yet: add a person below.');
  } catch (e) {
    if (gen !== state.gen) return;
    failed(e, st, 'Could not load people');
  }
}

// An attendee's chooser is themself, opened at once.
async function loadSelf(id) {
  const gen = state.gen;
  const st = $('#persons-status');
  setStatus(st, 'loading', 'Loading your details…');
  try {
    const me = await api.getPerson(id);
    if (gen !== state.gen) return;
    state.attendee = me;
    state.persons = [me];
    setStatus(st, '', '');
    renderSession(api.tokenClaims());
    selectPerson(me);
  } catch (e) {
    if (gen !== state.gen) return;
    failed(e, st, 'Could not load your details');
  }
}

function filters() {
  const f = new FormData($('#filters'));
  return { start_date: f.get('start_date'), end_date: f.get('end_date'),
           distance: f.get('distance'), window: f.get('window') };
}

function selectPerson(p) {
  state.selected = p;
  renderPersons();
  renderErase();
  showConnections();
  $('#encounters-title').textContent = `Encounters of ${fullName(p)}`;
  $('#encounters-card').hidden = false;
  timeline.show(p, fullName);
}

async function showConnections() {
  const p = state.selected;
  if (!p) return;
  const seq = ++state.seq;           // a newer request wins
  const st = $('#connections-status');
  const ul = $('#connections');
  const f = filters();
  $('#detail-title').textContent = `Connections of ${fullName(p)}`;
  ul.textContent = '';
  $('#plot').hidden = true;
  setStatus(st, 'loading', `Looking for ${fullName(p)}'s connections…`);
  try {
    const [people, meetings, own] = await Promise.all([
      api.connectedPersons(p.id, f), api.connections(p.id, f), api.locationsOf(p.id, f)]);
    if (seq !== state.seq) return;
    for (const c of people) {
      const li = document.createElement('li');
      li.className = 'connection';
      li.dataset.personId = c.person_id;
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = `${c.first_name} ${c.last_name}`;
      const company = document.createElement('span');
      company.className = 'company';
      company.textContent = c.company_name;
      const met = document.createElement('span');
      met.className = 'met';
      const times = c.meetings > 1 ? ` (${c.meetings} times, until ${day(c.last_met)})` : '';
      met.textContent = `met at ${c.latitude}, ${c.longitude} on ${day(c.first_met)}${times}`;
      li.append(name, company, met);
      ul.appendChild(li);
    }
    const n = people.length;
    setStatus(st, '', n ? `${plural(n, 'person', 'people')} crossed paths with ${fullName(p)}.`
                        : `No connections for ${fullName(p)} with these settings.`);
    renderPlot($('#plot-svg'), own,
               meetings.map((m) => ({ ...m.location, label: fullName(m.person) })));
    $('#plot').hidden = false;
  } catch (e) {
    if (seq !== state.seq) return;
    failed(e, st, 'Could not load connections');
  }
}

function clearConnections(text) {
  state.seq++;
  $('#detail-title').textContent = 'Connections';
  $('#connections').textContent = '';
  $('#plot').hidden = true;
  setStatus($('#connections-status'), '', text);
  timeline.stop();
  $('#encounters').textContent = '';
  $('#encounters-card').hidden = true;
}

async function addPerson(ev) {
  ev.preventDefault();
  const form = $('#add-person');
  const st = $('#add-status');
  const data = Object.fromEntries(new FormData(form));
  for (const [k, v] of Object.entries(data)) {
    if (!v.trim()) {
      setStatus(st, 'error', `Please fill in ${form.elements[k].parentElement.firstChild.textContent.trim().toLowerCase()}.`);
      form.elements[k].focus();
      return;
    }
  }
  const button = form.querySelector('button');
  button.disabled = true;
  setStatus(st, 'loading', 'Saving…');
  try {
    const p = await api.createPerson(data);
    form.reset();
    setStatus(st, '', `Added ${fullName(p)}.`);
    await loadPersons();
  } catch (e) {
    failed(e, st, 'Could not add the person');
    if (e.field && form.elements[e.field]) form.elements[e.field].focus();
  } finally {
    button.disabled = false;
  }
}

// ---- erasure: an attendee their own data, an organizer the chosen person

function renderErase() {
  const box = $('#erase');
  const p = state.attendee || state.selected;
  $('#erase-confirm').hidden = true;
  box.hidden = !p;
  if (!p) return;
  const self = !!state.attendee;
  $('#erase-title').textContent = self ? 'Delete my data' : 'Delete this person';
  $('#erase-button').textContent = self ? 'Delete my data' : 'Delete this person';
  $('#erase-what').textContent = self
    ? 'Erases your person record and every location recorded for you. You are signed out afterwards.'
    : `Erases ${fullName(p)}: the person record and every location recorded for them.`;
  setStatus($('#erase-status'), '', '');
}

function askErase() {
  const p = state.attendee || state.selected;
  if (!p) return;
  $('#erase-question').textContent = state.attendee
    ? 'Delete all your data now? This cannot be undone.'
    : `Delete ${fullName(p)} and all their locations now? This cannot be undone.`;
  $('#erase-confirm').hidden = false;
  $('#erase-button').disabled = true;
  $('#erase-no').focus();
}

function cancelErase() {
  $('#erase-confirm').hidden = true;
  $('#erase-button').disabled = false;
  $('#erase-button').focus();
}

async function erase() {
  const p = state.attendee || state.selected;
  if (!p) return;
  const self = !!state.attendee;
  const gen = state.gen;
  const st = $('#erase-status');
  $('#erase-yes').disabled = $('#erase-no').disabled = true;
  setStatus(st, 'loading', 'Deleting…');
  state.erasing = true;
  try {
    const r = await api.erasePerson(p.id);
    if (gen !== state.gen) return;
    const what = `${plural(r.locations, 'location', 'locations')} and ` +
                 `${plural(r.rejects, 'rejected location message', 'rejected location messages')}`;
    if (self) {
      signOut(`Your data was deleted: your person record, ${what}. You are signed out.`);
      return;
    }
    state.selected = null;
    renderErase();
    clearConnections(`Deleted ${fullName(p)}: the person record, ${what}.`);
    await loadPersons();
  } catch (e) {
    if (gen !== state.gen) return;
    $('#erase-confirm').hidden = true;
    $('#erase-button').disabled = false;
    failed(e, st, `Could not delete ${self ? 'your data' : fullName(p)}`);
  } finally {
    state.erasing = false;
    $('#erase-yes').disabled = $('#erase-no').disabled = false;
  }
}

// ---- start

// (Re)start the app for the token in this tab, if any: on load, and when a
// sign-in link is opened in a tab already showing the app (only the
// fragment changes then, so the page is not reloaded).
function start() {
  api.takeTokenFromAddress();
  state.gen++;
  state.persons = [];
  state.selected = null;
  state.attendee = null;
  $('#signin').hidden = true;
  $('#app').hidden = false;
  $('#persons').textContent = '';
  clearConnections('Choose a person to see their connections.');
  renderErase();
  const claims = api.getToken() ? api.tokenClaims() : null;
  const attendee = claims && claims.role === 'attendee' && /^[1-9][0-9]*$/.test(String(claims.sub));
  $('#people-title').textContent = attendee ? 'You' : 'People';
  $('#add-person').hidden = !!attendee;
  renderSession(claims);
  if (attendee) loadSelf(claims.sub); else loadPersons();
}

$('#filters').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (!state.selected) {
    setStatus($('#connections-status'), 'error', 'Choose a person first.');
    return;
  }
  showConnections();
});
$('#add-person').addEventListener('submit', addPerson);
$('#erase-button').addEventListener('click', askErase);
$('#erase-no').addEventListener('click', cancelErase);
$('#erase-yes').addEventListener('click', erase);
$('#sign-out').addEventListener('click', () => signOut());
window.addEventListener('hashchange', () => {
  if (/(^#|&)token=/.test(window.location.hash)) start();
});
start();
