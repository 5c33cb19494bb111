// The Annotate tab's span editor (gr.HTML js_on_load: `element`, `props`, `trigger`, `watch` are gradio's).
// It draws props.value (ui/span_editor.py's editor_view) and sends each action to the server as
// trigger('submit', {...}); the server checks and applies it and sends the new view back. Words are
// tagging units, addressed by index: a selection always snaps to whole units.
const local = { pending: null, selected: null, filter: "", shown: null };

function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function view() { return props.value || {}; }

function send(action, extra) {
  const v = view();
  trigger("submit", Object.assign({ action, listing: v.listing, revision: v.revision }, extra || {}));
}

function spansAt(unit) {
  return (view().spans || []).filter((s) => s.first <= unit && unit <= s.last);
}

function background(spans) {
  if (!spans.length) return "";
  if (spans.length === 1) return `background:${spans[0].colour}`;
  const step = 100 / spans.length;
  const stops = spans.map((s, k) => `${s.colour} ${k * step}% ${(k + 1) * step}%`).join(",");
  return `background:linear-gradient(180deg,${stops})`;
}

function drawText(v) {
  // Units glued together (no space between) sit in one no-wrap group, so a line never breaks inside a word.
  const tokens = v.tokens;
  const unitAt = (k) => (tokens[k] ? tokens[k][1] : -1);
  const sel = local.selected !== null ? v.spans[local.selected] : null;
  const pending = local.pending;
  let out = "", open = false;
  tokens.forEach(([piece, unit], k) => {
    let covering;
    const classes = ["se-t"];
    if (unit >= 0) {
      covering = spansAt(unit);
      classes.push("se-u");
      if (!open) { out += '<span class="se-w">'; open = true; }
    } else {  // a gap takes the colour of a value running through it
      if (open) { out += "</span>"; open = false; }
      const before = unitAt(k - 1), after = unitAt(k + 1);
      covering = before >= 0 && after >= 0 ? spansAt(before).filter((s) => s.last >= after) : [];
    }
    const lo = unit >= 0 ? unit : unitAt(k - 1), hi = unit >= 0 ? unit : unitAt(k + 1);
    const within = (range) => range && lo >= 0 && hi >= 0 && lo >= range.first && hi <= range.last;
    if (covering.length) classes.push("se-marked");
    if (covering.some((s) => s.unsure)) classes.push("se-unsure");
    if (within(sel)) classes.push("se-selected");
    if (within(pending)) classes.push("se-pending");
    out += `<span class="${classes.join(" ")}" data-t="${k}" data-u="${unit}" style="${background(covering)}">${esc(piece)}</span>`;
    if (unit >= 0) {
      for (const s of v.spans.filter((s) => s.last === unit)) {
        out += `<span class="se-chip${s.unsure ? " se-chip-unsure" : ""}" data-span="${s.i}" contenteditable="false" ` +
          `style="background:${s.colour}" title="${s.unsure ? "the model is unsure: " + s.confidence : ""}">` +
          `${esc(s.attribute)}${s.unsure ? " ?" : ""}</span>`;
      }
    }
  });
  return open ? out + "</span>" : out;
}

function matches(v) {
  const f = local.filter.trim().toLowerCase();
  const all = v.attributes || [];
  if (!f) return all.filter((a) => a.key);
  const starts = all.filter((a) => a.name.toLowerCase().startsWith(f));
  const inside = all.filter((a) => !a.name.toLowerCase().startsWith(f) && a.name.toLowerCase().includes(f));
  return starts.concat(inside).slice(0, 9);
}

function drawPicker(v) {
  const target = local.selected !== null ? `relabel <b>${esc(v.spans[local.selected].value)}</b> as`
    : local.pending ? `mark <b>${esc(wordsText(v, local.pending))}</b> as` : "select words, then pick an attribute";
  const chips = matches(v).map((a, k) => {
    const key = local.filter.trim() ? (k === 0 ? "Enter" : "") : a.key;
    return `<button class="se-attr" data-attr="${esc(a.name)}" style="background:${a.colour}">` +
      `${key ? `<kbd>${key}</kbd> ` : ""}${esc(a.name)}</button>`;
  }).join("");
  return `<div class="se-picker"><span class="se-target">${target}</span>` +
    `<input class="se-filter" type="text" placeholder="type to find any of ${(v.attributes || []).length} attributes" ` +
    `value="${esc(local.filter)}" autocomplete="off" spellcheck="false">` +
    `<div class="se-attrs">${chips || "<i>no attribute matches</i>"}</div></div>`;
}

function wordsText(v, range) {
  return v.tokens.filter(([, u], k) => {
    const prev = v.tokens[k - 1], next = v.tokens[k + 1];
    if (u >= 0) return u >= range.first && u <= range.last;
    return prev && next && prev[1] >= range.first && next[1] <= range.last && prev[1] >= 0 && next[1] >= 0;
  }).map(([piece]) => piece).join("");
}

function drawValues(v) {
  if (!v.spans.length) return `<p class="se-empty">No values yet: select words and pick an attribute.</p>`;
  const rows = v.spans.map((s) => `<li class="se-value${local.selected === s.i ? " se-value-selected" : ""}" data-span="${s.i}">` +
    `<span class="se-chip" style="background:${s.colour}">${esc(s.attribute)}</span> ` +
    `<span class="se-context">${esc(s.before)}<mark style="background:${s.colour}">${esc(s.value)}</mark>${esc(s.after)}</span>` +
    (s.confidence !== null ? ` <span class="se-conf${s.unsure ? " se-conf-unsure" : ""}">${s.unsure ? "unsure " : ""}${s.confidence}</span>` : "") +
    `</li>`).join("");
  return `<ul class="se-values">${rows}</ul>`;
}

function drawButtons(v) {
  const b = (action, label, key, extra) => `<button class="se-btn${extra || ""}" data-action="${action}"><kbd>${key}</kbd> ${label}</button>`;
  return `<div class="se-buttons">${b("accept", "Accept as predicted", "A")}${b("save", "Save", "S", " se-primary")}` +
    `${b("skip", "Skip", "K")}${b("undo", "Undo", "Z")}${b("next", "Next listing", "N")}</div>`;
}

function render() {
  const v = view();
  const root = element.querySelector(".se-root");
  if (!root) return;
  const key = `${v.listing}:${v.revision}:${v.confirm ? v.confirm.action : ""}`;
  if (key !== local.shown) {  // a new view from the server: what was selected no longer applies
    local.shown = key;
    local.pending = null;
    local.selected = null;
    local.filter = "";
  }
  root.dataset.listing = v.listing === null || v.listing === undefined ? "" : String(v.listing);
  root.dataset.revision = String(v.revision ?? "");
  window.onbeforeunload = v.unsaved ? () => "This listing has unsaved changes." : null;
  const help = (v.shortcuts || []).map(([k, what]) => `<span><kbd>${esc(k)}</kbd> ${esc(what)}</span>`).join("");
  if (v.listing === null || v.listing === undefined) {
    root.innerHTML = `<p class="se-empty">No listing loaded. Type your name above, then press <kbd>N</kbd> or ` +
      `<button class="se-btn se-primary" data-action="next"><kbd>N</kbd> Load next listing</button></p>` +
      `<div class="se-help">${help}</div>`;
    return;
  }
  const confirm = v.confirm ? `<div class="se-confirm" role="alertdialog">${esc(v.confirm.text)} ` +
    `<button class="se-btn se-primary" data-action="${esc(v.confirm.action)}" data-force="1"><kbd>Enter</kbd> ${esc(v.confirm.yes)}</button>` +
    `<button class="se-btn" data-action="stay"><kbd>Esc</kbd> Stay</button></div>` : "";
  const notes = (v.notes || []).map((n) => `<div class="se-note">${esc(n)}</div>`).join("");
  root.innerHTML = `${confirm}${notes}<div class="se-head">Listing ${esc(v.listing)}${v.external_id ? ` (${esc(v.external_id)})` : ""}` +
    `${v.unsaved ? ' · <span class="se-unsaved">unsaved changes</span>' : ""}</div>` +
    `<div class="se-text" tabindex="0">${drawText(v)}</div>${drawPicker(v)}${drawValues(v)}${drawButtons(v)}` +
    `<div class="se-help">${help}</div>`;
  const filter = root.querySelector(".se-filter");
  if (filter && (local.pending || local.selected !== null)) {
    filter.focus();
    filter.setSelectionRange(filter.value.length, filter.value.length);
  }
}

function tokenOf(node, fromEnd) {
  const el = node && (node.nodeType === 1 ? node : node.parentElement);
  const t = el && el.closest && el.closest(".se-t");
  if (t) return Number(t.dataset.t);
  const chip = el && el.closest && el.closest(".se-chip");  // a chip ends its value: count the unit before it
  if (chip) {
    let prev = chip.previousElementSibling;
    while (prev && !prev.classList.contains("se-t")) prev = prev.previousElementSibling;
    return prev ? Number(prev.dataset.t) : null;
  }
  return null;
}

function unitRange(v, a, b) {
  // token indices -> the units they cover; a gap at an end moves inwards to the next unit
  let lo = Math.min(a, b), hi = Math.max(a, b);
  while (lo <= hi && v.tokens[lo][1] < 0) lo++;
  while (hi >= lo && v.tokens[hi][1] < 0) hi--;
  return lo > hi ? null : { first: v.tokens[lo][1], last: v.tokens[hi][1] };
}

function gluedWord(v, unit) {
  // the run of letters and digits around a unit with nothing between them ("80W", not "8MB-2x4MB/80W")
  const k = v.tokens.findIndex(([, u]) => u === unit);
  const alnum = (t) => t && t[1] >= 0 && /[\p{L}\p{N}]/u.test(t[0]);
  let lo = k, hi = k;
  while (alnum(v.tokens[lo - 1]) && alnum(v.tokens[lo])) lo--;
  while (alnum(v.tokens[hi + 1]) && alnum(v.tokens[hi])) hi++;
  return { first: v.tokens[lo][1], last: v.tokens[hi][1] };
}

function chooseRange(range) {
  if (local.selected !== null) {  // a value is selected: the new words are its new bounds
    send("rebound", { span: local.selected, first: range.first, last: range.last });
    return;
  }
  local.pending = range;
  render();
}

function applyAttribute(name) {
  if (local.selected !== null) send("relabel", { span: local.selected, attribute: name });
  else if (local.pending) send("add", { first: local.pending.first, last: local.pending.last, attribute: name });
}

function clickSpan(spans) {
  // several values on one word: each click selects the next of them
  const at = spans.findIndex((s) => s.i === local.selected);
  local.selected = spans[(at + 1) % spans.length].i;
  local.pending = null;
  render();
}

element.addEventListener("mouseup", (event) => {
  const v = view();
  if (!v.tokens || !event.target.closest(".se-text")) return;
  const selection = window.getSelection();
  if (selection && !selection.isCollapsed) {
    const range = unitRange(v, tokenOf(selection.anchorNode), tokenOf(selection.focusNode));
    selection.removeAllRanges();
    if (range) chooseRange(range);
    return;
  }
  const chip = event.target.closest(".se-chip");
  if (chip) return clickSpan(v.spans.filter((s) => s.i === Number(chip.dataset.span)));
  const token = event.target.closest(".se-u");
  if (!token) return;
  const unit = Number(token.dataset.u);
  const covering = spansAt(unit);
  if (event.detail >= 2) {  // double click: the glued word under the pointer
    if (covering.some((s) => s.i === local.selected)) return;
    chooseRange(gluedWord(v, unit));
  } else if (covering.length) {
    clickSpan(covering);
  } else {
    local.selected = null;
    chooseRange({ first: unit, last: unit });
  }
});

element.addEventListener("dblclick", (event) => {
  if (event.target.closest(".se-text")) window.getSelection().removeAllRanges();
});

element.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (button && button.dataset.attr) return applyAttribute(button.dataset.attr);
  if (button && button.dataset.action) return act(button.dataset.action, button.dataset.force === "1");
  const row = event.target.closest(".se-value");
  if (row) clickSpan(view().spans.filter((s) => s.i === Number(row.dataset.span)));
});

element.addEventListener("input", (event) => {
  if (!event.target.classList.contains("se-filter")) return;
  local.filter = event.target.value;
  const picker = element.querySelector(".se-attrs");
  const v = view();
  const fresh = document.createElement("div");
  fresh.innerHTML = drawPicker(v);
  picker.replaceWith(fresh.querySelector(".se-attrs"));
});

function act(action, force) {
  const v = view();
  if (action === "stay") { send("stay"); return; }
  if (action === "remove") {
    if (local.selected === null) return;
    send("remove", { span: local.selected });
    return;
  }
  send(action, force ? { force: true } : {});
}

function clear() {
  local.pending = null;
  local.selected = null;
  local.filter = "";
  render();
}

const KEYS = { a: "accept", s: "save", k: "skip", n: "next", z: "undo" };  // N only loads when no listing is open

function onKey(event) {
  if (!element.isConnected || element.offsetParent === null) return;  // another tab is showing
  const v = view();
  const inFilter = event.target.classList && event.target.classList.contains("se-filter");
  const typing = !inFilter && event.target.closest && event.target.closest("input, textarea, select, [contenteditable=true]");
  if (typing || event.altKey || event.metaKey) return;
  if (v.confirm) {
    if (event.key === "Enter") { event.preventDefault(); act(v.confirm.action, true); }
    if (event.key === "Escape") { event.preventDefault(); act("stay"); }
    return;
  }
  const key = event.key;
  if (inFilter) {
    const empty = !event.target.value;
    if (key === "Enter") {
      event.preventDefault();
      const best = matches(v)[0];
      if (best && local.filter.trim()) applyAttribute(best.name);
    } else if (key === "Escape") {
      event.preventDefault();
      event.target.blur();
      clear();
    } else if (empty && /^[1-9]$/.test(key)) {
      event.preventDefault();
      const hit = (v.attributes || []).find((a) => a.key === key);
      if (hit) applyAttribute(hit.name);
    } else if (empty && (key === "Backspace" || key === "Delete") && local.selected !== null) {
      event.preventDefault();
      act("remove");
    } else if (empty && event.ctrlKey && key.toLowerCase() === "z") {
      event.preventDefault();
      act("undo");
    }
    return;
  }
  if (event.ctrlKey && key.toLowerCase() === "z") { event.preventDefault(); return act("undo"); }
  if (event.ctrlKey) return;
  if (/^[1-9]$/.test(key)) {
    const hit = (v.attributes || []).find((a) => a.key === key);
    if (hit && (local.pending || local.selected !== null)) { event.preventDefault(); applyAttribute(hit.name); }
    return;
  }
  if ((key === "Backspace" || key === "Delete") && local.selected !== null) { event.preventDefault(); return act("remove"); }
  if (key === "Escape") return clear();
  if (key === "/") {
    const filter = element.querySelector(".se-filter");
    if (filter) { event.preventDefault(); filter.focus(); }
    return;
  }
  const action = KEYS[key.toLowerCase()];
  if (action && (v.listing !== null && v.listing !== undefined || action === "next")) { event.preventDefault(); act(action, false); }
}

// one listener however often gradio mounts the component
if (window.dramSpanEditorKeys) document.removeEventListener("keydown", window.dramSpanEditorKeys);
window.dramSpanEditorKeys = onKey;
document.addEventListener("keydown", onKey);

watch("value", render);
render();
