// attnviz token view: the user's text, one focusable element per token, coloured by its weight.
// Every string from the data is written with textContent or as an attribute value, never as markup;
// styles are built only from colours that pass the #rrggbb check below.
// Data: attnviz.highlight.token_view_payload (docs/token-view.md). State back to Python: "selected".

const HEX6 = /^[0-9a-f]{6}$/i;
const views = new WeakMap(); // parentElement -> {root, text, sig, theme, selected}

function parseColor(s) {
  s = (s || "").trim();
  let m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(s);
  if (m) {
    let h = m[1];
    if (h.length === 3) h = h.split("").map((c) => c + c).join("");
    return [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16));
  }
  m = /^rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)/i.exec(s);
  return m ? [m[1], m[2], m[3]].map(Number) : null;
}

// WCAG 2 relative luminance, sRGB 0..255
function luminance(rgb) {
  const lin = rgb.map((v) => {
    const c = v / 255;
    return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
}

// The palette to draw with: the one asked for, else Streamlit's theme background, else the OS setting.
function pickTheme(data, host) {
  const names = Object.keys(data.palettes || {});
  if (names.length === 1) return names[0];
  if (data.theme === "light" || data.theme === "dark") return data.theme;
  const bg = parseColor(getComputedStyle(host).getPropertyValue("--st-background-color"));
  if (bg) return luminance(bg) < 0.2 ? "dark" : "light";
  return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function colourAt(packed, level) {
  const h = String(packed || "").substr(6 * level, 6);
  return HEX6.test(h) ? "#" + h : null;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function drawLegend(lg, label) {
  const box = el("div", "tv-legend");
  box.appendChild(el("div", "tv-legend-label", label));
  const barWrap = el("div", "tv-bar-wrap");
  const bar = el("div", "tv-bar");
  const stops = (lg.stops || [])
    .filter((s) => HEX6.test(String(s[1]).slice(1)) && isFinite(s[0]))
    .map((s) => `${s[1]} ${(100 * Number(s[0])).toFixed(1)}%`);
  if (stops.length) bar.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  barWrap.appendChild(bar);
  if (lg.uniform) {
    const left = `${(100 * Number(lg.uniform.position)).toFixed(1)}%`;
    const mark = el("div", "tv-uniform");
    mark.style.left = left;
    barWrap.appendChild(mark);
    const ut = el("div", "tv-uniform-text", lg.uniform.text);
    ut.style.left = left;
    const at = Number(lg.uniform.position); // keep the words inside the bar's width
    ut.style.transform = at < 0.15 ? "translateX(0)" : at > 0.85 ? "translateX(-100%)" : "translateX(-50%)";
    barWrap.appendChild(ut);
    box.classList.add("tv-has-uniform");
  }
  box.appendChild(barWrap);
  const ticks = el("div", "tv-ticks");
  for (const t of lg.ticks || []) {
    const s = el("span", "tv-tick", t.text);
    s.style.left = `${(100 * Number(t.position)).toFixed(1)}%`;
    ticks.appendChild(s);
  }
  box.appendChild(ticks);
  box.appendChild(el("div", "tv-words", lg.words));
  return box;
}

function render(data, theme) {
  const pal = data.palettes[theme];
  const root = el("div", "tv-root" + (data.classroom ? " tv-classroom" : ""));
  root.dataset.theme = theme;
  root.style.setProperty("--tv-page", colourAt(pal.page.slice(1), 0) || "transparent");
  root.style.setProperty("--tv-text", colourAt(pal.text.slice(1), 0) || "inherit");
  root.appendChild(drawLegend(pal.legend || {}, data.label));
  const text = el("div", "tv-text");
  text.setAttribute("role", "listbox");
  text.setAttribute("aria-label", `${data.label}: ${data.n} tokens. Arrow keys move, Enter or Space selects.`);
  const n = data.n, toks = data.tokens, gaps = data.gaps, q = data.q;
  const frag = document.createDocumentFragment();
  for (let i = 0; i < n; i++) {
    if (gaps[i]) frag.appendChild(document.createTextNode(gaps[i]));
    const tok = String(toks[i]);
    if (!tok) continue; // nothing to see or click: the text is unchanged without it
    const s = el("span", "tv-tok", tok);
    const level = Math.max(0, Math.min(255, q[i] | 0));
    if (level > 0) { // level 0 is the page itself: plain text
      const bg = colourAt(pal.bg, level), ink = colourAt(pal.ink, level);
      if (bg) s.style.backgroundColor = bg;
      if (ink) s.style.color = ink;
    }
    const name = data.labels ? String(data.labels[i]) : tok;
    s.dataset.i = String(i);
    s.dataset.q = String(level);
    s.setAttribute("role", "option");
    s.setAttribute("tabindex", "-1");
    s.setAttribute("aria-selected", "false");
    s.setAttribute("title", `${name} · weight ${data.wt[i]} · rank ${data.rank[i]}/${n}`);
    s.setAttribute("aria-label", `${name}, weight ${data.wt[i]}, rank ${data.rank[i]} of ${n}`);
    frag.appendChild(s);
  }
  if (gaps[n]) frag.appendChild(document.createTextNode(gaps[n]));
  text.appendChild(frag);
  root.appendChild(text);
  return {root, text};
}

function tokenAt(view, i) {
  return i === null || i === undefined ? null : view.text.querySelector(`.tv-tok[data-i="${i | 0}"]`);
}

// aria-selected and the one Tab stop (roving tabindex: Tab enters the text at the selected token)
function showSelection(view, i) {
  for (const old of view.text.querySelectorAll('.tv-tok[aria-selected="true"]')) {
    old.setAttribute("aria-selected", "false");
  }
  const cur = tokenAt(view, i);
  if (cur) cur.setAttribute("aria-selected", "true");
  setTabStop(view, cur || view.text.querySelector(".tv-tok"));
  view.selected = cur ? i : null;
}

function setTabStop(view, tok) {
  const prev = view.text.querySelector('.tv-tok[tabindex="0"]');
  if (prev && prev !== tok) prev.setAttribute("tabindex", "-1");
  if (tok) tok.setAttribute("tabindex", "0");
}

export default function tokenView(component) {
  const {data, parentElement, setStateValue} = component;
  if (!data || !data.palettes) return;
  const host = parentElement.host || parentElement;
  const theme = pickTheme(data, host);
  const sig = JSON.stringify({...data, selected: null}) + "|" + theme;
  let view = views.get(parentElement);
  if (!view || view.sig !== sig) { // new data: redraw; a selection-only change keeps the elements (and focus)
    const old = view;
    const hadFocus = old && old.root.contains(parentElement.activeElement);
    if (old) old.root.remove();
    const drawn = render(data, theme);
    view = {...drawn, sig, theme, selected: null, given: data.selected};
    parentElement.appendChild(view.root);
    views.set(parentElement, view);
    const select = (tok) => {
      const i = Number(tok.dataset.i);
      showSelection(view, i);
      tok.focus();
      setStateValue("selected", i);
    };
    view.text.addEventListener("click", (e) => {
      const tok = e.target.closest ? e.target.closest(".tv-tok") : null;
      if (tok) select(tok);
    });
    view.text.addEventListener("keydown", (e) => {
      const tok = e.target.closest ? e.target.closest(".tv-tok") : null;
      if (!tok) return;
      const all = view.text.querySelectorAll(".tv-tok");
      const at = Array.prototype.indexOf.call(all, tok);
      let next = null;
      if (e.key === "Enter" || e.key === " " || e.key === "Spacebar") {
        e.preventDefault();
        select(tok);
        return;
      } else if (e.key === "ArrowRight" || e.key === "ArrowDown") next = all[Math.min(all.length - 1, at + 1)];
      else if (e.key === "ArrowLeft" || e.key === "ArrowUp") next = all[Math.max(0, at - 1)];
      else if (e.key === "Home") next = all[0];
      else if (e.key === "End") next = all[all.length - 1];
      if (next) {
        e.preventDefault();
        setTabStop(view, next);
        next.focus();
      }
    });
    showSelection(view, view && old && old.given === data.selected ? old.selected : data.selected);
    if (hadFocus) (tokenAt(view, view.selected) || view.text.querySelector(".tv-tok"))?.focus();
  } else if (view.given !== data.selected) { // Python moved the selection; otherwise the user's click stands
    view.given = data.selected;
    showSelection(view, data.selected);
  }
}
