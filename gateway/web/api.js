// UdaConnect REST client (same origin).  Every failure becomes an ApiError
// carrying the server's error body: {"error": {status, code, message, field}}.
// A database refusal (403) also carries its detail or hint when it has one.
export class ApiError extends Error {
  constructor(status, code, message, field, explain) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.explain = explain || null;
  }
}

// The sign-in token (a JWT the server issued: the QR code on a badge holds
// `/#token=<jwt>`).  Kept in sessionStorage: this tab only, gone when it
// closes, never in a cookie, so no other site can make the browser send it.
const TOKEN_KEY = 'udaconnect.token';
export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
}
export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
  } catch (e) { /* storage disabled: the token lasts until the page is left */ }
  memoryToken = t || '';
}
// With storage disabled the token still works for this page view.
let memoryToken = '';
const currentToken = () => getToken() || memoryToken;

// `#token=<jwt>` in the address: store the token and take it out of the
// address bar (history.replaceState: no history entry keeps it, and a
// copied link does not sign anyone else in).  Other fragment parameters
// stay.  Returns true when the address held a token.
export function takeTokenFromAddress() {
  const hash = window.location.hash.replace(/^#/, '');
  if (!hash) return false;
  const params = new URLSearchParams(hash);
  if (!params.has('token')) return false;
  const token = (params.get('token') || '').trim();
  params.delete('token');
  const rest = params.toString();
  const url = window.location.pathname + window.location.search + (rest ? '#' + rest : '');
  window.history.replaceState(window.history.state, '', url);
  setToken(token);
  return true;
}

// The token's claims, decoded WITHOUT verification (the browser has no key
// and must not need one): for showing who is signed in, nothing else.  The
// server verifies the token on every call and decides what the caller may
// do; null when the token is not a readable JWT.
export function tokenClaims(token = currentToken()) {
  const part = (token || '').split('.')[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const json = new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
    const claims = JSON.parse(json);
    return claims && typeof claims === 'object' ? claims : null;
  } catch (e) {
    return null;
  }
}

function authHeaders(accept) {
  const headers = { Accept: accept };
  const token = currentToken();
  if (token) {
    if (!/^[\x21-\x7e]+$/.test(token)) {
      throw new ApiError(401, 'invalid_token', 'The sign-in token is damaged (it holds spaces or other characters a token cannot have).', null);
    }
    headers.Authorization = `Bearer ${token}`;
  }
  return headers;
}

async function errorOf(resp) {
  let data = null;
  try { data = await resp.json(); } catch (e) { /* no body */ }
  const err = (data && data.error) || {};
  return new ApiError(resp.status, err.code || 'http_error',
                      err.message || `The server answered ${resp.status}.`, err.field || null,
                      err.detail || err.hint);
}

async function call(method, path, body) {
  return (await request(method, path, body)).data;
}

async function request(method, path, body) {
  const init = { method, headers: authHeaders('application/json') };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network_error', 'The server cannot be reached. Is UdaConnect running?', null);
  }
  let data = null;
  try {
    data = await resp.json();
  } catch (e) {
    if (resp.ok) throw new ApiError(resp.status, 'bad_response', 'The server sent an unreadable answer.', null);
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(resp.status, err.code || 'http_error',
                       err.message || `The server answered ${resp.status}.`, err.field || null,
                       err.detail || err.hint);
  }
  return { data, resp };
}

const qs = (params) => new URLSearchParams(
  Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '')).toString();
const pid = (id) => encodeURIComponent(id);

export const listPersons = () => call('GET', '/api/persons');
export const getPerson = (id) => call('GET', `/api/persons/${pid(id)}`);
export const createPerson = (p) => call('POST', '/api/persons', p);
export const erasePerson = (id) => call('DELETE', `/api/persons/${pid(id)}`);
export const connectedPersons = (id, f) => call('GET', `/api/persons/${pid(id)}/connections?${qs(f)}`);
export const connections = (id, f) => call('GET', `/api/persons/${pid(id)}/connection?${qs(f)}`);
export const locationsOf = (id, f) => call('GET', `/api/locations?${qs({ person_id: id, start_date: f.start_date, end_date: f.end_date, limit: 1000 })}`);

// A page of a person's encounters: {items, next} (next: the cursor of the
// following page, null on the last).
export async function encountersPage(id, cursor) {
  const { data, resp } = await request('GET', `/api/persons/${pid(id)}/encounters?${qs({ limit: 1000, cursor })}`);
  const items = Array.isArray(data) ? data : (data && data.encounters) || [];
  const next = resp.headers.get('X-Next-Cursor') || (data && !Array.isArray(data) && data.next_cursor) || null;
  return { items, next };
}

// The live stream of a person's encounters, resuming after lastEventId:
// the Response, whose body the caller reads.  Refusals throw ApiError.
export async function openEncounterStream(id, lastEventId, signal) {
  const headers = authHeaders('text/event-stream');
  if (lastEventId) headers['Last-Event-ID'] = lastEventId;
  let resp;
  try {
    resp = await fetch(`/api/persons/${pid(id)}/encounters/stream`, { headers, signal, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'network_error', 'The server cannot be reached.', null);
  }
  if (!resp.ok) throw await errorOf(resp);
  return resp;
}
