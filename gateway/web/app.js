// UdaConnect web app: persons, their connections, an SVG plot, add a person.
import * as api from './api.js';
import { renderPlot } from './plot.js';

const $ = (sel) => document.querySelector(sel);
const state = { persons: [], selected: null, seq: 0 };

function setStatus(node, kind, text) {
  node.className = 'status' + (kind ? ' ' + kind : '');
  node.textContent = text;
  node.setAttribute('aria-busy', kind === 'loading' ? 'true' : 'false');
}

const fullName = (p) => `${p.first_name} ${p.last_name}`;
const day = (ts) => (ts || '').slice(0, 10);

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
  const st = $('#persons-status');
  setStatus(st, 'loading', 'Loading people…');
  try {
    state.persons = await api.listPersons();
    renderPersons();
    setStatus(st, '', state.persons.length ? '' : 'Nobody here yet: add a person below.');
  } catch (e) {
    setStatus(st, 'error', `Could not load people: ${e.message}`);
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
  showConnections();
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
    setStatus(st, '', n ? `${n} ${n === 1 ? 'person' : 'people'} crossed paths with ${fullName(p)}.`
                        : `No connections for ${fullName(p)} with these settings.`);
    renderPlot($('#plot-svg'), own,
               meetings.map((m) => ({ ...m.location, label: fullName(m.person) })));
    $('#plot').hidden = false;
  } catch (e) {
    if (seq !== state.seq) return;
    setStatus(st, 'error', `Could not load connections: ${e.message}`);
  }
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
    if (e.status === 401) {
      setStatus(st, 'error', api.getToken()
        ? 'Could not add the person: the server refused the API token. Check it under “API token”.'
        : 'Could not add the person: the server needs an API token. Enter it under “API token”.');
      $('#token-box').open = true;
      $('#api-token').focus();
    } else {
      setStatus(st, 'error', `Could not add the person: ${e.message}`);
      if (e.field && form.elements[e.field]) form.elements[e.field].focus();
    }
  } finally {
    button.disabled = false;
  }
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
$('#api-token').value = api.getToken();
$('#api-token').addEventListener('input', (ev) => api.setToken(ev.target.value.trim()));
loadPersons();
