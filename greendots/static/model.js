// The state of one run: its planned tests and the latest status line of each.

export const STATES = ["pending", "running", "passed", "failed", "error", "skipped"];
export const PENDING = 0;
export const RUNNING = 1;
export const FAILED = 3;
export const ERROR = 4;
const OUTCOMES = { passed: 2, failed: FAILED, error: ERROR, skipped: 5 };

/** The last non-empty line of an exception: what its failure group is named by. */
export function failureKey(exception) {
  const lines = String(exception || "").split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i].trim();
    if (line) return line;
  }
  return "(no exception text)";
}

export function formatValue(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

export class RunModel {
  constructor(plan) {
    this.rowParams = Array.isArray(plan.row_params) ? plan.row_params.map(String) : [];
    this.tests = [];
    this.index = new Map();
    const groups = plan.groups && typeof plan.groups === "object" ? plan.groups : {};
    for (const [group, tests] of Object.entries(groups)) {
      if (!Array.isArray(tests)) continue;
      for (const test of tests) {
        if (!test || typeof test.id !== "string" || this.index.has(test.id)) continue;
        const params = test.params && typeof test.params === "object" ? test.params : {};
        this.index.set(test.id, this.tests.length);
        this.tests.push({ id: test.id, group, name: String(test.name ?? test.id), params });
      }
    }
    this.reset();
  }

  /** Forget every status line: all tests pending again. */
  reset() {
    const n = this.tests.length;
    this.state = new Uint8Array(n);
    this.progress = new Float32Array(n);
    this.time = new Float64Array(n).fill(-Infinity);
    // The exception of each test's current attempt (its latest start onwards).
    this.exception = new Array(n).fill(null);
    // Likewise the reason of a skip, which comes on a phase line, never on "finish".
    this.reason = new Array(n).fill(null);
    this.counts = STATES.map((_, code) => (code === PENDING ? n : 0));
    this.dirty = new Set(this.tests.keys());
    this.failuresChanged = true;
    this.skippedLines = 0;
    this.loaded = false;
  }

  /** Apply one status line; older lines than the one held for a test are ignored. */
  apply(line) {
    const i = line && typeof line.test === "string" ? this.index.get(line.test) : undefined;
    if (i === undefined) {
      this.skippedLines++;
      return;
    }
    const time = typeof line.time === "number" ? line.time : 0;
    if (time < this.time[i]) return;
    this.time[i] = time;
    if (line.type === "start") {
      this.exception[i] = null;
      this.reason[i] = null;
      this.progress[i] = 0;
    }
    if (line.exception && this.exception[i] === null) this.exception[i] = String(line.exception);
    if (line.reason && this.reason[i] === null) this.reason[i] = String(line.reason);
    if (line.type === "progress" && typeof line.percentage === "number") {
      this.progress[i] = Math.min(1, Math.max(0, line.percentage));
    }
    const state = line.type === "finish" ? (OUTCOMES[line.outcome] ?? ERROR) : RUNNING;
    this._setState(i, state);
  }

  _setState(i, state) {
    const old = this.state[i];
    this.dirty.add(i);
    if (old === state) return;
    this.counts[old]--;
    this.counts[state]++;
    this.state[i] = state;
    if (old === FAILED || old === ERROR || state === FAILED || state === ERROR) {
      this.failuresChanged = true;
    }
  }

  stateName(i) {
    return STATES[this.state[i]];
  }

  /** True once every planned test has finished. */
  get done() {
    return this.tests.length > 0 && this.counts[PENDING] === 0 && this.counts[RUNNING] === 0;
  }

  /** Failed and errored tests grouped by their exception's last line, biggest first. */
  failureGroups() {
    const groups = new Map();
    for (let i = 0; i < this.state.length; i++) {
      if (this.state[i] !== FAILED && this.state[i] !== ERROR) continue;
      const key = failureKey(this.exception[i]);
      let members = groups.get(key);
      if (!members) groups.set(key, (members = []));
      members.push(i);
    }
    return [...groups].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1));
  }
}
