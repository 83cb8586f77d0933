// A run's matrix page and a test's page, both following the run live.

import { RequestError, apiUrl, fetchJson, pageUrl, request, retrying, sleep } from "./api.js";
import { byId, crumbs, esc, navigate } from "./dom.js";
import { matches, parseFilter, usesState } from "./filter.js";
import { MatrixView } from "./matrix.js";
import { FAILED, ERROR, RUNNING, RunModel, STATES, failureKey, formatValue } from "./model.js";
import { RunFollower } from "./follow.js";

// A run without a plan is still collecting its tests; ask again this often.
const PLAN_RETRY_MS = 2000;
// Regrouping failures walks every test; do it at most this often while lines stream.
const FAILURES_EVERY_MS = 250;
// Beyond this many failure groups the list stops helping and only costs time.
const MAX_GROUPS_SHOWN = 100;
// Wait this long on a dot before asking for its log, so sweeping the mouse is free.
const HOVER_DELAY_MS = 200;
const TAIL_LINES = 10;
const RESIZE_DELAY_MS = 150;

// Plans never change once written: keep the latest few for the life of the
// page (a plan can be megabytes).
const plans = new Map();
const PLANS_KEPT = 5;
let session = null;

/** The one run being followed, shared by its matrix page and its tests' pages. */
class RunSession {
  constructor(project, run, plan) {
    this.key = `${project}\n${run}`;
    this.model = new RunModel(plan);
    this.listeners = new Set();
    this.stopper = new AbortController();
    const notify = () => this.listeners.forEach((listener) => listener());
    this.follower = new RunFollower(apiUrl.run(project, run), this.model, notify);
    this.follower.run(this.stopper.signal);
  }

  listen(listener, signal) {
    this.listeners.add(listener);
    signal.addEventListener("abort", () => this.listeners.delete(listener));
  }
}

export function closeRunSession() {
  session?.stopper.abort();
  session = null;
}

/** The plan of a run, waiting while it is collected; its session, started once. */
async function openSession(project, run, status, signal) {
  const key = `${project}\n${run}`;
  if (session?.key === key) return session;
  closeRunSession();
  let plan = plans.get(key);
  while (!plan) {
    try {
      plan = await retrying(
        () => fetchJson(`${apiUrl.run(project, run)}/plan`, { signal }),
        signal,
      );
    } catch (error) {
      if (!(error instanceof RequestError) || error.status !== 404) throw error;
      status.innerHTML = `<p class="muted waiting">No plan yet: the run is still collecting its tests
        (or does not exist). Checking again…</p>`;
      await sleep(PLAN_RETRY_MS, signal);
    }
  }
  plans.delete(key);
  plans.set(key, plan);
  if (plans.size > PLANS_KEPT) plans.delete(plans.keys().next().value);
  if (signal.aborted) throw new DOMException("aborted", "AbortError");
  session = new RunSession(project, run, plan);
  return session;
}

function counterHtml() {
  const button = (state) =>
    `<button type="button" class="counter" data-state="${state}" title="Show ${state} tests">` +
    `<b class="d ${state}"></b><span class="n" id="count-${state}">0</span> ${state}</button>`;
  const total = '<span class="total" id="count-total"></span>';
  return `<div class="counters">${STATES.map(button).join("")}${total}</div>`;
}

export async function runPage(main, project, run, signal) {
  document.title = `${run} — ${project} — GreenDots`;
  const query = new URLSearchParams(location.search).get("q") || "";
  main.innerHTML = `${crumbs([["GreenDots", "/"], [project, pageUrl.project(project)], [run]])}
    <div class="run-head"><h1>${esc(run)}</h1><span id="runstate" class="runstate">loading</span></div>
    <div id="body"><p class="muted">Loading the plan…</p></div>`;
  const current = await openSession(project, run, byId("body"), signal);
  if (signal.aborted) return;
  const model = current.model;
  performance.mark("gd:plan");

  byId("body").innerHTML = `${counterHtml()}
    <div class="toolbar"><input id="filter" type="search" autocomplete="off" spellcheck="false"
      placeholder="Filter: words of the test id, state:failed, arch=x86" value="${esc(query)}">
      <span id="matching" class="muted"></span></div>
    <div class="run-body"><aside class="failures"><h2>Failures</h2><ul id="failures"></ul></aside>
      <div id="matrix" class="matrix"></div></div>`;
  const view = new MatrixView(byId("matrix"), model);
  let terms = parseFilter(query);
  let selected = null;
  const refilter = () => {
    let count = 0;
    for (let i = 0; i < model.tests.length; i++)
      count += view.match[i] = matches(terms, model, i) ? 1 : 0;
    byId("matching").textContent = terms ? `${count} of ${model.tests.length} match` : "";
  };
  refilter();
  view.render();
  model.dirty.clear();
  performance.mark("gd:matrix");

  let frame = 0;
  let failuresAt = 0;
  let failuresTimer = 0;
  const drawFailures = () => {
    clearTimeout(failuresTimer);
    failuresTimer = 0;
    failuresAt = performance.now();
    model.failuresChanged = false;
    const groups = model.failureGroups();
    const items = groups.slice(0, MAX_GROUPS_SHOWN).map(
      ([
        key,
        members,
      ]) => `<li><button type="button" class="failure${key === selected ? " selected" : ""}"
        data-key="${esc(key)}" title="${esc(key)}"><span class="n">${members.length}</span>
        <span class="text">${esc(key)}</span></button></li>`,
    );
    if (groups.length > MAX_GROUPS_SHOWN) {
      items.push(
        `<li class="muted">${groups.length - MAX_GROUPS_SHOWN} smaller groups not shown</li>`,
      );
    }
    byId("failures").innerHTML = items.join("") || '<li class="muted">None</li>';
    if (selected !== null) {
      const group = groups.find(([key]) => key === selected);
      view.highlight = new Set(group ? group[1] : []);
      view.updateAll();
    }
  };
  const draw = () => {
    frame = 0;
    if (usesState(terms)) {
      for (const i of model.dirty) view.match[i] = matches(terms, model, i) ? 1 : 0;
    }
    view.update(model.dirty);
    model.dirty.clear();
    STATES.forEach((state, code) => (byId(`count-${state}`).textContent = model.counts[code]));
    const finished = model.tests.length - model.counts[0] - model.counts[RUNNING];
    byId("count-total").textContent = `${finished} of ${model.tests.length} finished`;
    const state = byId("runstate");
    state.textContent = !model.loaded ? "loading" : model.done ? "done" : "running";
    state.className = `runstate ${state.textContent}`;
    if (model.failuresChanged && !failuresTimer) {
      const wait = Math.max(0, FAILURES_EVERY_MS - (performance.now() - failuresAt));
      failuresTimer = setTimeout(drawFailures, model.loaded ? wait : FAILURES_EVERY_MS);
    }
    if (model.loaded && !performance.getEntriesByName("gd:rendered").length) {
      // Timing marks for scripts/bench_dashboard.py: "painted" follows the next frame.
      performance.mark("gd:rendered");
      requestAnimationFrame(() => setTimeout(() => performance.mark("gd:painted")));
    }
  };
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(draw);
  };
  current.listen(schedule, signal);
  signal.addEventListener("abort", () => {
    cancelAnimationFrame(frame);
    clearTimeout(failuresTimer);
  });
  draw();
  drawFailures();

  let typing = 0;
  byId("filter").addEventListener("input", (event) => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      const text = event.target.value;
      terms = parseFilter(text);
      const url = new URL(location.href);
      if (text.trim()) url.searchParams.set("q", text.trim());
      else url.searchParams.delete("q");
      history.replaceState(null, "", url.pathname + url.search);
      refilter();
      view.updateAll();
    }, 120);
  });
  main.querySelector(".counters").addEventListener("click", (event) => {
    const counter = event.target.closest(".counter");
    if (!counter) return;
    const input = byId("filter");
    input.value = `state:${counter.dataset.state}`;
    input.dispatchEvent(new Event("input"));
  });
  byId("failures").addEventListener("click", (event) => {
    const button = event.target.closest(".failure");
    if (!button) return;
    selected = selected === button.dataset.key ? null : button.dataset.key;
    if (selected === null) view.highlight = null;
    drawFailures();
    view.updateAll();
  });
  hoverAndClick(view, project, run, signal);

  let resizing = 0;
  const observer = new ResizeObserver(() => {
    clearTimeout(resizing);
    resizing = setTimeout(() => view.refit(), RESIZE_DELAY_MS);
  });
  observer.observe(byId("matrix"));
  signal.addEventListener("abort", () => observer.disconnect());
}

function stateText(model, i) {
  const state = model.stateName(i);
  if (model.state[i] === RUNNING) return `${state} ${Math.round(model.progress[i] * 100)}%`;
  return state;
}

function paramsHtml(params) {
  return Object.entries(params)
    .map(
      ([key, value]) =>
        `<span class="param"><span class="k">${esc(key)}</span>=${esc(formatValue(value))}</span>`,
    )
    .join(" ");
}

/** Hovering a dot shows its details and log tail; clicking opens its page. */
function hoverAndClick(view, project, run, signal) {
  const model = view.model;
  const tip = byId("tip");
  let shown = -1;
  let timer = 0;
  let loading = null;
  const hide = () => {
    shown = -1;
    tip.hidden = true;
    clearTimeout(timer);
    loading?.abort();
  };
  signal.addEventListener("abort", hide);
  view.root.addEventListener("mouseover", (event) => {
    const dot = event.target.closest("b.d");
    if (!dot) return hide();
    const i = Number(dot.dataset.i);
    if (i === shown) return;
    hide();
    shown = i;
    const test = model.tests[i];
    const failed = model.state[i] === FAILED || model.state[i] === ERROR;
    const reason = model.state[i] === 5 ? model.reason[i] : null;
    tip.innerHTML = `<div class="tip-id">${esc(test.id)}</div>
      <div class="tip-params">${paramsHtml(test.params)}</div>
      <div class="tip-state"><b class="d ${model.stateName(i)}"></b> ${esc(stateText(model, i))}</div>
      ${failed ? `<pre class="tip-exc">${esc(failureKey(model.exception[i]))}</pre>` : ""}
      ${reason ? `<div class="tip-reason">${esc(reason)}</div>` : ""}
      <div class="tip-log muted">Log…</div>`;
    const box = dot.getBoundingClientRect();
    tip.hidden = false;
    const left = Math.min(box.left, window.innerWidth - tip.offsetWidth - 8);
    const below = box.bottom + 6 + tip.offsetHeight < window.innerHeight;
    tip.style.left = `${Math.max(4, left)}px`;
    tip.style.top = `${below ? box.bottom + 6 : Math.max(4, box.top - tip.offsetHeight - 6)}px`;
    timer = setTimeout(() => {
      loading = new AbortController();
      showLogTail(
        tip.querySelector(".tip-log"),
        apiUrl.test(project, run, test.id),
        loading.signal,
      );
    }, HOVER_DELAY_MS);
  });
  view.root.addEventListener("mouseleave", hide);
  view.root.addEventListener("click", (event) => {
    const dot = event.target.closest("b.d");
    if (!dot) return;
    const test = model.tests[Number(dot.dataset.i)];
    navigate(pageUrl.test(project, run, test.id));
  });
}

async function showLogTail(place, testUrl, signal) {
  try {
    const response = await request(`${testUrl}/log_tail?lines=${TAIL_LINES}`, { signal });
    if (!response.ok) {
      place.textContent =
        response.status === 404
          ? "No log for this test yet."
          : `Log unavailable (${response.status}).`;
      return;
    }
    const frame = document.createElement("iframe");
    frame.className = "tail";
    frame.title = "Last lines of the log";
    frame.sandbox = "";
    frame.srcdoc = await response.text();
    place.replaceChildren(frame);
    place.classList.remove("muted");
  } catch (error) {
    if (error.name !== "AbortError") place.textContent = "Log unavailable.";
  }
}

export async function testPage(main, project, run, testId, signal) {
  document.title = `${testId} — GreenDots`;
  main.innerHTML = `${crumbs([["GreenDots", "/"], [project, pageUrl.project(project)], [run, pageUrl.run(project, run)], [testId]])}
    <div id="body"><p class="muted">Loading the plan…</p></div>`;
  const current = await openSession(project, run, byId("body"), signal);
  if (signal.aborted) return;
  const model = current.model;
  const i = model.index.get(testId);
  if (i === undefined) {
    byId("body").innerHTML =
      `<p class="error" role="alert">The plan of this run has no test ${esc(testId)}.</p>`;
    return;
  }
  const test = model.tests[i];
  const testUrl = apiUrl.test(project, run, testId);
  byId("body").innerHTML = `<h1 class="test-id">${esc(test.id)}</h1>
    <p class="test-where"><span class="k">group</span> ${esc(test.group)} · <span class="k">test</span> ${esc(test.name)}
      · ${paramsHtml(test.params) || '<span class="muted">no parameters</span>'}</p>
    <p class="test-state" id="test-state"></p>
    <section id="exception-box" hidden><h2>Exception</h2><pre id="exception" class="exception"></pre></section>
    <section id="reason-box" hidden><h2>Skipped</h2><p id="reason"></p></section>
    <section><h2>Log <a class="raw" href="${esc(testUrl)}/log_stream" target="_blank">open</a></h2>
      <div id="log"><p class="muted">Looking for the log…</p></div></section>`;

  let logShown = false;
  let lastState = -1;
  const draw = () => {
    const state = model.stateName(i);
    byId("test-state").innerHTML = `<b class="d ${state}"></b> ${esc(stateText(model, i))}`;
    const exception =
      model.state[i] === FAILED || model.state[i] === ERROR ? model.exception[i] : null;
    byId("exception-box").hidden = !exception;
    byId("exception").textContent = exception || "";
    const reason = model.state[i] === 5 ? model.reason[i] : null;
    byId("reason-box").hidden = !reason;
    byId("reason").textContent = reason || "";
    if (!logShown && model.state[i] !== lastState) findLog();
    lastState = model.state[i];
  };
  const findLog = async () => {
    try {
      const response = await request(`${testUrl}/log_tail?lines=1`, { signal });
      if (signal.aborted) return;
      if (!response.ok || logShown) {
        if (!logShown) byId("log").innerHTML = '<p class="muted">No log for this test yet.</p>';
        return;
      }
      logShown = true;
      byId("log").innerHTML =
        `<iframe class="log" title="Log of ${esc(test.id)}" src="${esc(testUrl)}/log_stream"></iframe>`;
    } catch (error) {
      if (!signal.aborted) byId("log").innerHTML = '<p class="muted">Log unavailable.</p>';
    }
  };
  let frame = 0;
  current.listen(() => {
    if (!frame) frame = requestAnimationFrame(() => ((frame = 0), draw()));
  }, signal);
  signal.addEventListener("abort", () => cancelAnimationFrame(frame));
  draw();
}
