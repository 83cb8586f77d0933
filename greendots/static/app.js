// The dashboard: routes of the History API onto pages, and the home and project pages.

import { RequestError, apiUrl, fetchJson, pageUrl, retrying, sleep } from "./api.js";
import { byId, crumbs, esc, navigate } from "./dom.js";
import { closeRunSession, runPage, testPage } from "./runpage.js";

// Listings change when runs start; look again this often.
const LISTING_REFRESH_MS = 15000;
const RUNS_ON_HOME = 5;

function metadataLine(metadata) {
  if (!metadata || typeof metadata !== "object") return "";
  const shown = Object.entries(metadata)
    .filter(([key, value]) => key !== "name" && key !== "description" && typeof value !== "object")
    .slice(0, 4)
    .map(
      ([key, value]) =>
        `<span class="meta"><span class="k">${esc(key)}</span> ${esc(value)}</span>`,
    );
  return shown.join(" ");
}

function errorHtml(error) {
  return `<p class="error" role="alert">${esc(error.message || error)}</p>`;
}

/** Run ``draw`` on ``load()`` now and every refresh, until the page is left. */
async function refreshing(main, load, draw, signal) {
  for (;;) {
    try {
      const answer = await retrying(load, signal);
      if (signal.aborted) return;
      draw(answer);
    } catch (error) {
      if (signal.aborted) return;
      main.insertAdjacentHTML("beforeend", errorHtml(error));
      if (!(error instanceof RequestError)) throw error;
      return;
    }
    try {
      await sleep(LISTING_REFRESH_MS, signal);
    } catch {
      return;
    }
  }
}

function homePage(main, signal) {
  document.title = "GreenDots";
  main.innerHTML = `<h1>Projects</h1><div id="projects"><p class="muted">Loading…</p></div>`;
  const draw = ({ projects }) => {
    const items = (projects || []).map((project) => {
      const runs = (project.runs || []).map(
        (
          run,
        ) => `<li><a href="${esc(pageUrl.run(project.id, run.id))}">${esc(run.name || run.id)}</a>
          <span class="age" title="${esc(run.created_at || "")}">${esc(run.pretty_age || "")}</span></li>`,
      );
      const description = project.metadata?.description;
      return `<li class="project" data-project="${esc(project.id)}">
        <h2><a href="${esc(pageUrl.project(project.id))}">${esc(project.name || project.id)}</a></h2>
        ${description ? `<p class="description">${esc(description)}</p>` : ""}
        <ul class="runs">${runs.join("") || '<li class="muted">No runs yet</li>'}</ul>
        <a class="more" href="${esc(pageUrl.project(project.id))}">All runs →</a></li>`;
    });
    byId("projects").innerHTML = items.length
      ? `<ul class="projects">${items.join("")}</ul>`
      : '<p class="muted">No projects in the runs directory yet.</p>';
  };
  return refreshing(main, () => fetchJson(apiUrl.projects(RUNS_ON_HOME), { signal }), draw, signal);
}

function projectPage(main, project, signal) {
  document.title = `${project} — GreenDots`;
  main.innerHTML = `${crumbs([["GreenDots", "/"], [project]])}<h1>${esc(project)}</h1>
    <div id="runs"><p class="muted">Loading…</p></div>`;
  const draw = ({ runs }) => {
    const rows = (runs || []).map(
      (
        run,
      ) => `<tr><td><a href="${esc(pageUrl.run(project, run.id))}">${esc(run.name || run.id)}</a></td>
        <td class="age" title="${esc(run.created_at || "")}">${esc(run.pretty_age || "")}</td>
        <td>${metadataLine(run.metadata)}</td></tr>`,
    );
    byId("runs").innerHTML = rows.length
      ? `<table class="runs"><thead><tr><th>Run</th><th>Started</th><th>Details</th></tr></thead>
         <tbody>${rows.join("")}</tbody></table>`
      : '<p class="muted">No runs yet.</p>';
  };
  return refreshing(main, () => fetchJson(apiUrl.runs(project), { signal }), draw, signal);
}

function decode(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

let leave = null;

/** Draw the page that the address names. */
function route() {
  leave?.abort();
  leave = new AbortController();
  const signal = leave.signal;
  const main = byId("main");
  const parts = location.pathname.split("/").filter(Boolean).map(decode);
  const [projects, project, runs, run, tests, test] = parts;
  let page;
  if (!parts.length) {
    closeRunSession();
    page = homePage(main, signal);
  } else if (projects === "projects" && parts.length === 2) {
    closeRunSession();
    page = projectPage(main, project, signal);
  } else if (projects === "projects" && runs === "runs" && parts.length === 4) {
    page = runPage(main, project, run, signal);
  } else if (
    projects === "projects" &&
    runs === "runs" &&
    tests === "tests" &&
    parts.length === 6
  ) {
    page = testPage(main, project, run, test, signal);
  } else {
    closeRunSession();
    main.innerHTML = `<h1>Not found</h1><p>No page at this address. <a href="/">All projects</a></p>`;
  }
  page?.catch((error) => {
    if (!signal.aborted) {
      console.error(error);
      main.insertAdjacentHTML("beforeend", errorHtml(error));
    }
  });
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || link.target || event.button !== 0) return;
  if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", route);
window.addEventListener("greendots:navigate", route);
route();
