/* The status page's charts and "try it". Our own code: no library, no CDN, and no request
   to anything but this service. The numbers are in the HTML already; this script draws the
   last hour from /status.json, refreshes the page's numbers every 10 s, and sends a photo to
   the real endpoints with the key typed into the page (kept in this page only). */
"use strict";
(() => {
  const NS = "http://www.w3.org/2000/svg";
  const REFRESH_MS = 10000;
  const $ = (sel, root = document) => root.querySelector(sel);

  function make(ns, tag, attrs, kids) {
    const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v);
    }
    for (const kid of kids || []) node.append(kid);
    return node;
  }
  const h = (tag, attrs, ...kids) => make(null, tag, attrs, kids);
  const s = (tag, attrs, ...kids) => make(NS, tag, attrs, kids);

  function fmt(v, unit = "") {
    if (v === null || v === undefined) return "–";
    const a = Math.abs(v);
    const text = a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
    return (text.includes(".") ? text.replace(/\.?0+$/, "") : text) + unit;
  }

  // ---- history: /status.json's columns, merged across refreshes (?since= brings the new)
  let hist = null;

  function flatten(hi) {
    const c = new Map();
    for (const [task, cols] of Object.entries(hi.tasks)) {
      for (const [key, v] of Object.entries(cols)) c.set(`task:${task}:${key}`, v);
    }
    c.set("queue", hi.queue);
    c.set("running", hi.running);
    for (const w of hi.workers) {
      c.set(`uss:${w.slot}`, w.uss_mb);
      c.set(`busy:${w.slot}`, w.busy_pct);
    }
    hi.npu.cores.forEach((v, i) => c.set(`npu:${i}`, v));
    return c;
  }

  function merge(old, hi) {
    const inc = flatten(hi);
    const base = {every: hi.every, span: hi.span, why: hi.npu.why};
    if (!old) return {...base, t: hi.t.slice(), c: inc, events: hi.events.slice()};
    const n0 = old.t.length, n1 = hi.t.length, c = new Map();
    for (const k of new Set([...old.c.keys(), ...inc.keys()])) {
      c.set(k, (old.c.get(k) || Array(n0).fill(null)).concat(inc.get(k) || Array(n1).fill(null)));
    }
    const out = {...base, t: old.t.concat(hi.t), c, events: old.events.concat(hi.events)};
    const cut = (out.t.length ? out.t[out.t.length - 1] : 0) - hi.span;
    let i = 0;
    while (i < out.t.length && out.t[i] <= cut) i++;
    if (i) {
      out.t = out.t.slice(i);
      for (const [k, v] of c) c.set(k, v.slice(i));
    }
    out.events = out.events.filter((e) => e.t > cut);
    return out;
  }

  const col = (key) => hist.c.get(key) || [];
  const keysLike = (re) => [...hist.c.keys()].map((k) => k.match(re)).filter(Boolean);
  const active = (v) => v.some((x) => x !== null && x > 0);

  function tasks() {
    const names = keysLike(/^task:(.+):jobs_per_s$/).map((m) => m[1]);
    return names.filter((n) => n !== "sleep" && active(col(`task:${n}:jobs_per_s`))).sort();
  }
  const slots = (kind) => keysLike(new RegExp(`^${kind}:(\\d+)$`)).map((m) => +m[1]);

  const CHARTS = [
    {id: "jobs", title: "Jobs per second, by task", unit: "/s", empty: "No jobs in the samples of the last hour.",
     lines: () => tasks().map((t, i) => ({label: t, v: col(`task:${t}:jobs_per_s`), cls: i}))},
    {id: "latency", title: "Latency, queue + run (p50 solid, p95 dashed)", unit: " ms", log: true,
     empty: "No jobs in the samples of the last hour.",
     lines: () => tasks().flatMap((t, i) => [
       {label: `${t} p50`, v: col(`task:${t}:p50_ms`), cls: i},
       {label: `${t} p95`, v: col(`task:${t}:p95_ms`), cls: i, dash: true}])},
    {id: "queue", title: "Queue: jobs waiting (peak) and running", unit: "",
     lines: () => [{label: "waiting", v: col("queue"), cls: 1},
                   {label: "running", v: col("running"), cls: 0}]},
    {id: "memory", title: "Worker memory (USS), MB", unit: " MB",
     lines: () => slots("uss").map((n) => ({label: `worker ${n}`, v: col(`uss:${n}`), cls: n}))},
    {id: "busy", title: "Worker busy, % of time on jobs", unit: "%", max: 100,
     lines: () => slots("busy").map((n) => ({label: `worker ${n}`, v: col(`busy:${n}`), cls: n}))},
    {id: "npu", title: "NPU load per core, % (rknpu driver)", unit: "%", max: 100,
     empty: () => `Not available: ${hist.why || "no reading yet"}. Worker busy time above ` +
                  "shows how much each worker computes.",
     lines: () => slots("npu").map((n) => ({label: `core ${n}`, v: col(`npu:${n}`), cls: n}))},
  ];

  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    return [1, 2, 5, 10].map((m) => m * p).find((x) => x >= v * 1.0001) || 10 * p;
  }

  function drawChart(fig, spec) {
    // drawn at the figure's own width, so the labels stay 11 px on a phone as on a desktop
    const W = Math.round(Math.min(900, Math.max(280, fig.clientWidth - 20)));
    const H = W < 480 ? 170 : 190, L = 48, R = 10, T = 12, B = 24;
    const t = hist.t, n = t.length;
    const t1 = n ? t[n - 1] : Date.now() / 1000, t0 = t1 - hist.span;
    const lines = spec.lines().filter((l) => l.v.some((x) => x !== null));
    const values = lines.flatMap((l) => l.v.filter((x) => x !== null));
    const top = spec.max || niceCeil(Math.max(...values, spec.unit === "" ? 1 : 0));
    const lo = spec.log ? Math.max(1, 10 ** Math.floor(Math.log10(Math.min(...values, 10)))) : 0;
    const hi = spec.log ? 10 ** Math.ceil(Math.log10(Math.max(...values, lo * 10))) : top;
    const X = (tt) => L + ((tt - t0) / (t1 - t0)) * (W - L - R);
    const Y = (v) => {
      const f = spec.log ? (Math.log10(Math.max(v, lo)) - Math.log10(lo)) /
                           (Math.log10(hi) - Math.log10(lo)) : v / hi;
      return T + (1 - f) * (H - T - B);
    };
    const svg = s("svg", {class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img"});
    const ticks = spec.log ? [] : [0, hi / 2, hi];
    for (let d = lo; spec.log && d <= hi; d *= 10) ticks.push(d);
    for (const v of ticks) {
      svg.append(s("line", {class: "grid", x1: L, x2: W - R, y1: Y(v), y2: Y(v)}),
                 s("text", {x: L - 4, y: Y(v) + 4, "text-anchor": "end"}, fmt(v)));
    }
    [60, 45, 30, 15, 0].forEach((m) => {
      const x = X(t1 - m * 60);
      svg.append(s("text", {x, y: H - 6, "text-anchor": m ? "middle" : "end"},
                   m ? `-${m} min` : "now"));
    });
    for (const e of hist.events) {
      if (e.t < t0) continue;
      const kind = e.kind === "front restart" ? "front" : e.kind;
      const who = e.slot === null ? "HTTP front" : `worker ${e.slot}`;
      svg.append(s("line", {class: `ev ev-${kind}`, x1: X(e.t), x2: X(e.t), y1: T, y2: H - B},
                   s("title", {}, `${who} ${e.kind}${e.detail ? ": " + e.detail : ""}`)));
    }
    const gap = 2.5 * hist.every;
    for (const l of lines) {
      let d = "", open = false;
      l.v.forEach((v, i) => {
        if (v === null) { open = false; return; }
        const go = open && t[i] - t[i - 1] <= gap ? "L" : "M";
        d += `${go}${X(t[i]).toFixed(1)} ${Y(v).toFixed(1)}` + (go === "M" ? "l0 0" : "");
        open = true;
      });
      svg.append(s("path", {d, class: `s${l.cls % 6}${l.dash ? " dash" : ""}`,
                            "stroke-linecap": "round"}, s("title", {}, l.label)));
    }
    const latest = lines.map((l) => {
      const v = [...l.v].reverse().find((x) => x !== null);
      return {label: l.label, cls: l.cls, dash: l.dash, text: fmt(v, spec.unit)};
    });
    const summary = latest.map((x) => `${x.label} ${x.text}`).join(", ");
    svg.setAttribute("aria-label", `${spec.title}, last hour. Latest: ${summary || "no data"}`);
    const legend = h("ul", {class: "legend"}, ...latest.map((x) => h("li", {},
      s("svg", {viewBox: "0 0 20 8", "aria-hidden": "true"},
        s("line", {x1: 0, x2: 20, y1: 4, y2: 4, class: `s${x.cls % 6}${x.dash ? " dash" : ""}`})),
      `${x.label} ${x.text}`)));
    const kids = [h("figcaption", {}, spec.title), svg, legend];
    if (!lines.length) {
      const empty = typeof spec.empty === "function" ? spec.empty() : spec.empty || "No data yet.";
      kids.splice(1, 0, h("p", {class: "note"}, empty));
    }
    fig.replaceChildren(...kids);
  }

  function drawCharts() {
    const grid = $("#chart-grid");
    if (!grid || !hist) return;
    for (const spec of CHARTS) {
      let fig = document.getElementById(`chart-${spec.id}`);
      if (!fig) grid.append(fig = h("figure", {id: `chart-${spec.id}`}));
      drawChart(fig, spec);
    }
    if (!$("#chart-keys")) {
      grid.after(h("p", {id: "chart-keys", class: "note"},
        "Vertical lines: a worker restarted (red), recycled (blue, dotted), the HTTP front " +
        "restarted (amber). Hover them for the reason. One sample every 10 s."));
    }
  }

  // ---- refreshing: the charts from /status.json, the numbers from the page itself
  async function refreshCharts() {
    const last = hist && hist.t.length ? hist.t[hist.t.length - 1] : null;
    const answer = await fetch(`/status.json${last ? `?since=${last}` : ""}`, {cache: "no-store"});
    const doc = await answer.json();
    if (doc.history) hist = merge(hist, doc.history);
    drawCharts();
  }

  async function refreshNumbers() {
    const text = await (await fetch("/", {cache: "no-store"})).text();
    const fresh = new DOMParser().parseFromString(text, "text/html");
    for (const id of ["head", "now"]) {
      const now = document.getElementById(id), next = fresh.getElementById(id);
      if (!now || !next) continue;
      const open = $("#findings", now)?.open;
      now.replaceWith(next);
      if (open && $("#findings", next)) $("#findings", next).open = true;
    }
  }

  async function tick(first) {
    if (first) await refreshCharts().catch(() => null);
    else if (!document.hidden) await Promise.allSettled([refreshCharts(), refreshNumbers()]);
    setTimeout(tick, REFRESH_MS);
  }

  // ---- try it: the real endpoints, with the key typed here
  const tried = [];  // {name, url, vector}: the photos of this page session, for CLIP search

  async function post(path, body, json) {
    const headers = {"api-key": $("#key").value};
    if (json) headers["content-type"] = "application/json";
    const started = performance.now();
    let status = 0, data = null, error = null;
    try {
      const answer = await fetch(path, {method: "POST", headers, body, cache: "no-store"});
      status = answer.status;
      data = await answer.json().catch(() => null);
    } catch (exc) {
      error = String(exc);
    }
    return {path, status, data, error, ms: performance.now() - started};
  }

  const form = (file) => {
    const f = new FormData();
    f.append("file", file, file.name);
    return f;
  };

  function refusal(r) {
    if (r.error) return `no answer (${r.error})`;
    if (r.status === 401) return "the service refused this API key (401)";
    if (r.status === 422) return "no API key sent (422)";
    if (r.status === 503) return `busy, try again (503: ${r.data?.msg || ""})`;
    if (r.status !== 200) return `HTTP ${r.status}`;
    if (r.data && r.data.msg) return r.data.msg;
    return null;
  }

  function labelSize(img) {
    return Math.max(12, Math.round(Math.max(img.naturalWidth, img.naturalHeight) / 60));
  }

  function drawOcr(svg, img, ocr) {
    const {texts, scores, boxes} = ocr;
    const size = labelSize(img);
    boxes.forEach((b, i) => {
      const [x, y, w, hh] = [b.x, b.y, b.width, b.height].map(Number);
      svg.append(s("rect", {class: "ocr-box", x, y, width: w, height: hh, "data-line": i},
                       s("title", {}, `${texts[i]} (${scores[i]})`)),
                 s("text", {x, y: Math.max(size, y - size * 0.25), "font-size": size},
                   texts[i]));
    });
  }

  function drawFaces(svg, img, faces) {
    const size = labelSize(img);
    faces.forEach((f, i) => {
      const a = f.facial_area;
      const score = Number(f.face_confidence).toFixed(2);
      svg.append(s("rect", {class: "face-box", x: a.x, y: a.y, width: a.w, height: a.h,
                            "data-face": i}, s("title", {}, `face ${score}`)),
                 s("text", {x: a.x, y: a.y + a.h + size, "font-size": size}, `face ${score}`));
    });
  }

  async function tryPhoto(event) {
    event.preventDefault();
    const file = $("#photo").files[0];
    if (!file) return;
    const button = $("#run");
    button.disabled = true;
    const out = $("#result");
    const img = h("img", {id: "shot-img", alt: `the photo ${file.name}, with what was found`});
    const svg = s("svg", {id: "overlay", "aria-hidden": "true", preserveAspectRatio: "none"});
    const steps = h("tbody");
    const lines = h("ol", {id: "lines"});
    const notes = h("div", {id: "notes"});
    out.replaceChildren(h("div", {class: "shot-wrap"},
      h("figure", {id: "shot"}, h("div", {class: "stage"}, img, svg),
        h("figcaption", {}, file.name)),
      h("div", {},
        h("table", {id: "timing"}, h("caption", {}, "Steps, as this browser timed them"),
          h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "step"),
            h("th", {scope: "col"}, "ms"), h("th", {scope: "col"}, "result"))), steps),
        h("h3", {}, "Text read (OCR)"), lines, notes)));
    const step = (name, ms, result, failed) => steps.append(h("tr", {"data-step": name},
      h("td", {}, name), h("td", {}, ms === null ? "–" : ms.toFixed(0)),
      h("td", {class: failed ? "err" : null}, result)));
    try {
      const url = URL.createObjectURL(file);
      const shown = performance.now();
      img.src = url;
      try {
        await img.decode();
      } catch {
        step("show the photo", null, "this browser cannot display this file", true);
      }
      if (img.naturalWidth) {
        step("show the photo", performance.now() - shown, `${img.naturalWidth}×${img.naturalHeight} px`);
        svg.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
      }

      const ocr = await post("/ocr", form(file));
      const ocrRefused = refusal(ocr);
      if (ocrRefused) {
        step("OCR  /ocr", ocr.ms, ocrRefused, true);
        if (ocr.status === 401 || ocr.status === 422) return;
      } else {
        const result = ocr.data.result;
        const count = result.texts.length;
        step("OCR  /ocr", ocr.ms, `${count} line${count === 1 ? "" : "s"} of text`);
        if (img.naturalWidth) drawOcr(svg, img, result);
        result.texts.forEach((text, i) => lines.append(
          h("li", {}, text, " ", h("small", {}, result.scores[i]))));
        if (!result.texts.length) lines.append(h("li", {}, "no text found"));
      }

      const faces = await post("/represent", form(file));
      if (faces.status === 404) {
        step("faces  /represent", faces.ms, "not served by this version (404)");
      } else if (refusal(faces)) {
        step("faces  /represent", faces.ms, refusal(faces), true);
      } else {
        const found = faces.data.result || [];
        step("faces  /represent", faces.ms, `${found.length} face${found.length === 1 ? "" : "s"}`);
        if (img.naturalWidth) drawFaces(svg, img, found);
      }

      const clip = await post("/clip/img", form(file));
      const clipRefused = refusal(clip);
      if (clipRefused) {
        step("CLIP  /clip/img", clip.ms, clipRefused, true);
      } else {
        const vector = Float64Array.from(clip.data.result, Number);
        tried.push({name: file.name, url, vector});
        step("CLIP  /clip/img", clip.ms, `${vector.length}-d vector; ${tried.length} photo` +
             `${tried.length === 1 ? "" : "s"} to search`);
      }
    } catch (exc) {
      notes.append(h("p", {class: "err"}, `Something went wrong here: ${exc}`));
    } finally {
      button.disabled = false;
    }
  }

  function cosine(a, b) {
    let dot = 0, na = 0, nb = 0;
    for (let i = 0; i < a.length; i++) {
      dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i];
    }
    return na && nb ? dot / Math.sqrt(na * nb) : 0;
  }

  async function search(event) {
    event.preventDefault();
    const out = $("#ranking");
    const text = $("#query").value;
    if (!tried.length) {
      out.replaceChildren(h("p", {class: "note"}, "Try a photo first: the search ranks the " +
                                                  "photos tried in this page."));
      return;
    }
    const r = await post("/clip/txt", JSON.stringify({text}), true);
    const refused = refusal(r);
    if (refused) {
      out.replaceChildren(h("p", {class: "err"}, `CLIP /clip/txt: ${refused}`));
      return;
    }
    const query = Float64Array.from(r.data.result, Number);
    const ranked = tried.map((p) => ({...p, score: cosine(query, p.vector)}))
      .sort((a, b) => b.score - a.score);
    out.replaceChildren(
      h("p", {class: "note"}, `“${text}”: cosine similarity, /clip/txt took ${r.ms.toFixed(0)} ms`),
      h("ol", {class: "rank", id: "rank"}, ...ranked.map((p) => h("li", {"data-score": p.score},
        h("img", {src: p.url, alt: ""}),
        h("div", {}, h("div", {}, `${p.name}: ${p.score.toFixed(3)}`),
          h("meter", {min: -1, max: 1, value: p.score.toFixed(4)}))))));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const ui = $("#try-ui");
    if (ui) ui.hidden = false;
    $("#try-form")?.addEventListener("submit", tryPhoto);
    $("#query-form")?.addEventListener("submit", search);
    let pending = 0;
    addEventListener("resize", () => {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(drawCharts);
    });
    tick(true);
  });
})();
