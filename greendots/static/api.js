// Talking to the server: URLs, JSON answers, retries, and the connection notice.

const enc = encodeURIComponent;

export const apiUrl = {
  projects: (runs) => `/api/v1/projects${runs ? `?runs=${runs}` : ""}`,
  runs: (project) => `/api/v1/projects/${enc(project)}/runs`,
  run: (project, run) => `/api/v1/projects/${enc(project)}/runs/${enc(run)}`,
  test: (project, run, test) => `${apiUrl.run(project, run)}/test/${enc(test)}`,
};

export const pageUrl = {
  project: (project) => `/projects/${enc(project)}`,
  run: (project, run) => `/projects/${enc(project)}/runs/${enc(run)}`,
  test: (project, run, test) => `${pageUrl.run(project, run)}/tests/${enc(test)}`,
};

/** An answer that is not what was asked for; ``status`` 0 means no answer at all. */
export class RequestError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  /** Worth asking again later: the server is away or busy. */
  get retryable() {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

/** fetch(), with a network failure turned into RequestError(0); aborts pass through. */
export async function request(url, init) {
  try {
    return await fetch(url, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new RequestError(0, "the server cannot be reached");
  }
}

/** The JSON answer of ``url``; an error status or an ``error`` field becomes RequestError. */
export async function fetchJson(url, init) {
  const response = await request(url, init);
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    if (error.name === "AbortError") throw error;
  }
  if (body && typeof body === "object" && "error" in body) {
    throw new RequestError(response.ok ? 500 : response.status, String(body.error));
  }
  if (!response.ok || body === null) {
    throw new RequestError(response.status, `${response.status} ${response.statusText}`);
  }
  return body;
}

export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    });
  });
}

/** The notice at the top of every page while the server is away. */
export const connection = {
  problem(text) {
    const notice = document.getElementById("offline");
    notice.textContent = text;
    notice.hidden = false;
  },
  ok() {
    document.getElementById("offline").hidden = true;
  },
};

// Retry quickly at first, then settle at a pace a restarting server can bear.
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 8000;

/** Waits that double after each failure, capped, and the notice that says so. */
export class Backoff {
  constructor() {
    this.failures = 0;
  }

  async wait(error, signal) {
    const delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.failures);
    this.failures++;
    const why = error.status === 0 ? "Offline" : `Server unavailable (${error.status})`;
    connection.problem(`${why} — retrying in ${Math.round(delay / 100) / 10} s`);
    await sleep(delay, signal);
  }

  reset() {
    if (this.failures) connection.ok();
    this.failures = 0;
  }
}

/** ``load()``'s result, retried with backoff while the error is retryable. */
export async function retrying(load, signal) {
  const backoff = new Backoff();
  for (;;) {
    try {
      const result = await load();
      backoff.reset();
      return result;
    } catch (error) {
      if (!(error instanceof RequestError) || !error.retryable) throw error;
      await backoff.wait(error, signal);
    }
  }
}
