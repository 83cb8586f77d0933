// The filter box: words in the test id, state:NAME and param=value, all of which must match.

import { STATES, formatValue } from "./model.js";

/** The terms of a filter text, or null when it is empty. */
export function parseFilter(text) {
  const terms = [];
  for (const word of String(text || "")
    .trim()
    .split(/\s+/)) {
    if (!word) continue;
    const state = /^state:(.*)$/i.exec(word);
    const eq = word.indexOf("=");
    if (state) {
      terms.push({
        kind: "state",
        codes: state[1]
          .toLowerCase()
          .split(",")
          .map((s) => STATES.indexOf(s)),
      });
    } else if (eq > 0) {
      terms.push({
        kind: "param",
        key: word.slice(0, eq),
        value: word.slice(eq + 1).toLowerCase(),
      });
    } else {
      terms.push({ kind: "text", value: word.toLowerCase() });
    }
  }
  return terms.length ? terms : null;
}

/** Whether test ``i`` of ``model`` matches every term. */
export function matches(terms, model, i) {
  if (!terms) return true;
  const test = model.tests[i];
  for (const term of terms) {
    if (term.kind === "state") {
      if (!term.codes.includes(model.state[i])) return false;
    } else if (term.kind === "param") {
      if (!(term.key in test.params)) return false;
      if (formatValue(test.params[term.key]).toLowerCase() !== term.value) return false;
    } else if (!test.id.toLowerCase().includes(term.value)) {
      return false;
    }
  }
  return true;
}

/** Whether the filter depends on the tests' states (and must follow their changes). */
export function usesState(terms) {
  return Boolean(terms && terms.some((term) => term.kind === "state"));
}
