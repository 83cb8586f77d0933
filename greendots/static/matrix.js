// The matrix of dots: rows from the plan's row parameters, columns from the tests.

import { esc } from "./dom.js";
import { RUNNING, STATES, formatValue } from "./model.js";

// Keep in step with --cell in style.css: one dot and its gap.
const CELL_PX = 14;
// About the height of the upright test names above a band.
const HEADER_PX = 80;
const COMMON_ROW = "common";

/**
 * Rows and columns of a run. A column is one group, test name and set of other
 * parameters; a row is one combination of row-parameter values, and tests
 * without any row parameter share a common row.
 */
export function layoutOf(model) {
  const rows = new Map();
  const groups = new Map();
  model.tests.forEach((test, i) => {
    const values = model.rowParams
      .filter((p) => p in test.params)
      .map((p) => formatValue(test.params[p]));
    const rowKey = values.length ? JSON.stringify(values) : "";
    if (!rows.has(rowKey))
      rows.set(rowKey, { key: rowKey, label: values.length ? values.join(" · ") : COMMON_ROW });
    const rest = Object.entries(test.params).filter(([p]) => !model.rowParams.includes(p));
    let names = groups.get(test.group);
    if (!names) groups.set(test.group, (names = new Map()));
    let variants = names.get(test.name);
    if (!variants) names.set(test.name, (variants = new Map()));
    let variantKey = JSON.stringify(rest);
    // Two tests in one cell (same parameters) get a column each.
    for (let n = 2; variants.get(variantKey)?.cells.has(rowKey); n++) {
      variantKey = `${JSON.stringify(rest)}#${n}`;
    }
    let column = variants.get(variantKey);
    if (!column) {
      const label = rest.map(([p, v]) => `${p}=${formatValue(v)}`).join(", ");
      column = { group: test.group, name: test.name, label, cells: new Map() };
      variants.set(variantKey, column);
    }
    column.cells.set(rowKey, i);
  });
  // Rows in order of first appearance, the common row last.
  const rowList = [...rows.values()].sort((a, b) => (a.key === "") - (b.key === ""));
  rowList.forEach((row, n) => (row.order = n));
  const groupList = [...groups].map(([name, names]) => ({
    name,
    columns: [...names.values()].flatMap((variants) => [...variants.values()]),
  }));
  return { rows: rowList, groups: groupList };
}

/** Draws a model's dots and keeps them in step with it. */
export class MatrixView {
  constructor(root, model) {
    this.root = root;
    this.model = model;
    this.layout = layoutOf(model);
    this.elements = new Array(model.tests.length);
    this.match = new Uint8Array(model.tests.length).fill(1);
    this.highlight = null;
    this.perBand = 0;
  }

  className(i) {
    let name = `d ${STATES[this.model.state[i]]}`;
    if (!this.match[i] || (this.highlight && !this.highlight.has(i))) name += " dim";
    else if (this.highlight) name += " hl";
    return name;
  }

  /** Columns per band for the root's current width. */
  _fit() {
    const labels = this.layout.rows.reduce((m, r) => Math.max(m, r.label.length), 6);
    const labelPx = Math.min(220, 16 + 7 * labels);
    this.root.style.setProperty("--label", `${labelPx}px`);
    return Math.max(4, Math.floor((this.root.clientWidth - labelPx - 8) / CELL_PX));
  }

  /** Build every dot; bands of columns wrap to the page width. */
  render() {
    this.perBand = this._fit();
    const html = [];
    for (const group of this.layout.groups) {
      html.push(`<section class="group"><h3>${esc(group.name)}</h3>`);
      for (let start = 0; start < group.columns.length; start += this.perBand) {
        this._band(html, group.columns.slice(start, start + this.perBand));
      }
      html.push("</section>");
    }
    this.root.innerHTML = html.join("");
    for (const el of this.root.getElementsByClassName("d")) {
      this.elements[el.dataset.i] = el;
    }
    for (let i = 0; i < this.elements.length; i++) this._progress(i);
  }

  _band(html, columns) {
    const present = new Set();
    for (const column of columns) for (const key of column.cells.keys()) present.add(key);
    // Off-screen bands are neither laid out nor painted (content-visibility);
    // their height is known, so the scroll bar stays right.
    const height = HEADER_PX + CELL_PX * present.size;
    const grid = `grid-template-columns:var(--label) repeat(${columns.length},var(--cell))`;
    html.push(`<div class="band" style="${grid};contain-intrinsic-size:auto ${height}px">`);
    html.push('<span class="corner"></span>');
    for (let c = 0; c < columns.length;) {
      let span = 1;
      while (c + span < columns.length && columns[c + span].name === columns[c].name) span++;
      const name = esc(columns[c].name);
      html.push(`<span class="tn" style="grid-column:span ${span}" title="${name}">${name}</span>`);
      c += span;
    }
    for (const row of this.layout.rows) {
      if (!present.has(row.key)) continue;
      html.push(`<span class="rl" title="${esc(row.label)}">${esc(row.label)}</span>`);
      for (const column of columns) {
        const i = column.cells.get(row.key);
        html.push(
          i === undefined ? "<i></i>" : `<b class="${this.className(i)}" data-i="${i}"></b>`,
        );
      }
    }
    html.push("</div>");
  }

  _progress(i) {
    const el = this.elements[i];
    if (this.model.state[i] === RUNNING)
      el.style.setProperty("--p", this.model.progress[i].toFixed(3));
    else if (el.style.length) el.removeAttribute("style");
  }

  /** Redraw the given dots. */
  update(indices) {
    for (const i of indices) {
      const el = this.elements[i];
      if (!el) continue;
      const name = this.className(i);
      if (el.className !== name) el.className = name;
      this._progress(i);
    }
  }

  /** Redraw every dot (after the filter or the highlight changed). */
  updateAll() {
    this.update(this.elements.keys());
  }

  /** Rebuild when the width now fits a different number of columns. */
  refit() {
    if (this._fit() !== this.perBand) this.render();
  }
}
