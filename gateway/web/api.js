// UdaConnect REST client (same origin).  Every failure becomes an ApiError
// carrying the server's error body: {"error": {status, code, message, field}}.
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

// The optional API token (udaconnect-httpd's UDACONNECT_API_TOKEN): kept in
// sessionStorage (this tab only, gone when it closes), sent with writes.
const TOKEN_KEY = 'udaconnect.apiToken';
export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
}
export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
  } catch (e) { /* storage disabled: the token is not kept */ }
}

async function call(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' } };
  const token = getToken();
  if (method !== 'GET' && token) {
    if (!/^[\x21-\x7e]+$/.test(token)) {
      throw new ApiError(0, 'invalid_token', 'The API token may only contain printable ASCII characters (no spaces).', null);
    }
    init.headers.Authorization = `Bearer ${token}`;
  }
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
                       err.message || `The server answered ${resp.status}.`, err.field || null);
  }
  return data;
}

const qs = (params) => new URLSearchParams(
  Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '')).toString();

export const listPersons = () => call('GET', '/api/persons');
export const createPerson = (p) => call('POST', '/api/persons', p);
export const connectedPersons = (id, f) => call('GET', `/api/persons/${encodeURIComponent(id)}/connections?${qs(f)}`);
export const connections = (id, f) => call('GET', `/api/persons/${encodeURIComponent(id)}/connection?${qs(f)}`);
export const locationsOf = (id, f) => call('GET', `/api/locations?${qs({ person_id: id, start_date: f.start_date, end_date: f.end_date, limit: 1000 })}`);
