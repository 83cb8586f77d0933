// Small helpers for building pages.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** ``text`` safe to place in HTML text or a quoted attribute. */
export function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

export function byId(id) {
  return document.getElementById(id);
}

/** Show another page of the dashboard without reloading. */
export function navigate(url) {
  history.pushState(null, "", url);
  window.dispatchEvent(new Event("greendots:navigate"));
}

/** The breadcrumb trail: [label, href] pairs, the last one without a link. */
export function crumbs(trail) {
  const parts = trail.map(([label, href]) =>
    href ? `<a href="${esc(href)}">${esc(label)}</a>` : `<span>${esc(label)}</span>`,
  );
  return `<nav class="crumbs">${parts.join('<span class="sep">›</span>')}</nav>`;
}
