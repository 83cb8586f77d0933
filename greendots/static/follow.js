// Following a live run: the summary once, then long polls and byte ranges per worker.

import { Backoff, RequestError, fetchJson, request, sleep } from "./api.js";

const NEWLINE = 10;
// What reading a worker's new bytes found.
const GREW = "grew";
const SAME = "same";
const REREAD = "reread";
// A pause before polling again when a reported file had nothing new after all.
const SETTLE_MS = 250;
// How often a run whose polls keep answering is checked for a new worker's file.
const NEW_WORKER_CHECK_MS = 10000;

/** Apply each complete JSON line of ``text``; damaged lines are skipped. */
function applyText(model, text) {
  for (const raw of text.split("\n")) {
    // A network file system can leave runs of NUL bytes where a line was.
    const line = raw.replace(/^\u0000+/, "").trim();
    if (!line) continue;
    let record;
    try {
      record = JSON.parse(line);
    } catch {
      model.skippedLines++;
      continue;
    }
    model.apply(record);
  }
}

function concat(a, b) {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

/** Keeps ``model`` up to date with the run at ``url`` until ``signal`` aborts. */
export class RunFollower {
  constructor(url, model, onChange) {
    this.url = url;
    this.model = model;
    this.onChange = onChange;
    this.offsets = [];
    this.partial = [];
    this.decoder = new TextDecoder();
    this.workersCheckedAt = performance.now();
  }

  async run(signal) {
    const backoff = new Backoff();
    let resync = true;
    while (!signal.aborted) {
      try {
        if (backoff.failures) {
          // A long poll answers late by design; learn at once that the server is back.
          await fetchJson("/healthz", { signal, cache: "no-store" });
          backoff.reset();
        }
        if (resync) await this.summary(signal);
        resync = false;
        const ready = await this.poll(signal);
        let grew = false;
        for (const worker of ready) {
          const outcome = await this.stream(worker, signal);
          if (outcome === REREAD) resync = true;
          grew ||= outcome === GREW;
        }
        // A busy run's polls never come back empty; look for new workers now and then too.
        const due = performance.now() - this.workersCheckedAt > NEW_WORKER_CHECK_MS;
        if ((!ready.length || due) && (await this.newWorker(signal))) resync = true;
        // The server may report a file from sizes a moment old; let them catch up.
        if (ready.length && !grew && !resync) await sleep(SETTLE_MS, signal);
        backoff.reset();
      } catch (error) {
        if (signal.aborted || error.name === "AbortError") return;
        if (!(error instanceof RequestError)) console.error(error);
        await backoff
          .wait(error instanceof RequestError ? error : new RequestError(0, ""), signal)
          .catch(() => {});
      }
    }
  }

  /** Read the summary as it streams in, applying each line as it arrives. */
  async summary(signal) {
    const response = await request(`${this.url}/status_summary`, { signal, cache: "no-store" });
    if (!response.ok) throw new RequestError(response.status, "no status summary");
    performance.mark("gd:summary-start");
    const header = response.headers.get("X-End-Offset") || "";
    this.offsets = header
      .split(",")
      .map((s) => parseInt(s, 10))
      .filter((n) => n >= 0);
    this.partial = this.offsets.map(() => null);
    this.model.reset();

    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let rest = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += decoder.decode(value, { stream: true });
      const cut = rest.lastIndexOf("\n");
      if (cut >= 0) {
        applyText(this.model, rest.slice(0, cut));
        rest = rest.slice(cut + 1);
        this.onChange();
      }
    }
    applyText(this.model, rest + decoder.decode());
    this.model.loaded = true;
    performance.mark("gd:summary-end");
    this.onChange();
  }

  /** The workers whose files grew: answered at once, or empty after the server's timeout. */
  async poll(signal) {
    const answer = await fetchJson(`${this.url}/status_poll`, {
      method: "POST",
      body: JSON.stringify(this.offsets),
      signal,
    });
    const ready = Array.isArray(answer.workers_to_check) ? answer.workers_to_check : [];
    return ready.filter((w) => Number.isInteger(w) && w >= 0 && w < this.offsets.length);
  }

  /** Read what was appended to one worker's file: GREW, SAME or REREAD (start afresh). */
  async stream(worker, signal) {
    const offset = this.offsets[worker];
    const response = await request(`${this.url}/status_stream/${worker}`, {
      headers: { Range: `bytes=${offset}-` },
      signal,
      cache: "no-store",
    });
    const contentRange = response.headers.get("Content-Range") || "";
    if (response.status === 416) {
      // "bytes */SIZE": a file that ends at our offset has nothing new; a shorter one was rewritten.
      const size = /^bytes \*\/(\d+)$/.exec(contentRange);
      return size && Number(size[1]) === offset ? SAME : REREAD;
    }
    if (response.status === 404) return REREAD;
    if (response.status >= 500) throw new RequestError(response.status, "status file unavailable");
    const range = /^bytes (\d+)-/.exec(contentRange);
    if (response.status !== 206 || !range || Number(range[1]) !== offset) return REREAD;

    const bytes = new Uint8Array(await response.arrayBuffer());
    this.offsets[worker] = offset + bytes.length;
    const pending = this.partial[worker] ? concat(this.partial[worker], bytes) : bytes;
    const cut = pending.lastIndexOf(NEWLINE);
    // A line still being written waits for the rest of itself.
    this.partial[worker] = cut + 1 < pending.length ? pending.slice(cut + 1) : null;
    if (cut >= 0) {
      applyText(this.model, this.decoder.decode(pending.subarray(0, cut)));
      this.onChange();
    }
    return bytes.length ? GREW : SAME;
  }

  /** Whether a status file past the known workers has appeared. */
  async newWorker(signal) {
    this.workersCheckedAt = performance.now();
    const response = await request(`${this.url}/status_stream/${this.offsets.length}`, {
      method: "HEAD",
      signal,
      cache: "no-store",
    });
    return response.ok;
  }
}
