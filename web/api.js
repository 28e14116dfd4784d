// The REST API client: JSON in and out, problem+json errors, and the admin token.
//
// A 401 asks the page for a token (one prompt shared by every call waiting on it), keeps it
// in sessionStorage and retries the call, so no caller has to handle authentication.

const TOKEN_KEY = "splicegate.token";

/** An error answer from the API, carrying the problem+json fields. */
export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title || `HTTP ${status}`;
    this.detail = detail || "";
  }
}

let promptForToken = async () => { throw new ApiError(401, "Unauthorized", "an admin token is required"); };
let pendingPrompt = null;
// After the operator cancels the prompt, background calls stop asking until they click "Token".
let declined = false;

/** The stored admin token, or "" for none. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

/** Stores (or with "" forgets) the admin token for this browser tab. */
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Installs the function that asks the operator for a token; it resolves to the token or rejects. */
export function onTokenNeeded(prompt) {
  promptForToken = prompt;
}

/** Asks for a token once however many calls are waiting for one. */
export function askForToken(reason, { explicit = false } = {}) {
  if (explicit) declined = false;
  if (declined) return Promise.reject(new ApiError(401, "Unauthorized", "no admin token given"));
  if (!pendingPrompt) {
    pendingPrompt = promptForToken(reason).then(
      (value) => { setToken(value); pendingPrompt = null; return value; },
      (error) => { pendingPrompt = null; declined = true; throw error; });
  }
  return pendingPrompt;
}

async function problemOf(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (body && typeof body === "object") return new ApiError(response.status, body.title, body.detail);
  return new ApiError(response.status, response.statusText, "");
}

/** One API call; resolves to the parsed JSON body (null for 204), rejects with ApiError. */
export async function request(method, path, body, { timeoutMs = 30000 } = {}) {
  for (let attempt = 0; attempt < 4; attempt++) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token()) headers.Authorization = `Bearer ${token()}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    let response;
    try {
      response = await fetch(path, {
        method, headers, signal: controller.signal, cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(0, "Gateway unreachable",
        error.name === "AbortError" ? `no answer within ${timeoutMs / 1000} s` : "the admin API did not answer");
    } finally {
      clearTimeout(timer);
    }
    if (response.status === 401) {
      const problem = await problemOf(response);
      await askForToken(token() ? "The token was rejected." : problem.detail || "This gateway needs an admin token.");
      continue;
    }
    if (!response.ok) throw await problemOf(response);
    if (response.status === 204) return null;
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }
  throw new ApiError(401, "Unauthorized", "the token was rejected");
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body ?? {});
export const del = (path, options) => request("DELETE", path, undefined, options);

/** Every live session, following next_cursor. */
export async function allSessions() {
  const sessions = [];
  let cursor = null;
  for (let page = 0; page < 20; page++) {
    const query = new URLSearchParams({ limit: "1000" });
    if (cursor) query.set("cursor", cursor);
    const body = await get(`/api/v1/sessions?${query}`);
    sessions.push(...body.sessions);
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  return sessions;
}

/** The events stream's URL (EventSource cannot send headers, so the token goes in the query). */
export function eventsURL() {
  return token() ? `/api/v1/events?access_token=${encodeURIComponent(token())}` : "/api/v1/events";
}
