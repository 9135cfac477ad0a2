// descentlab course: the race widget, the quizzes and the playground.
// Plain browser JavaScript, no libraries: contour lines and race paths come from the server's JSON
// API (contourpy and the lab); this file only draws them and sends answers back.
"use strict";

const contourCache = new Map();

async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(data.message || data.detail || `request failed (${response.status})`);
  }
  return data;
}

async function contoursOf(landscape) {
  if (!contourCache.has(landscape)) {
    const response = await fetch(`/api/contours?landscape=${encodeURIComponent(landscape)}`);
    const data = await response.json();
    if (!response.ok) throw new Error(data.message || "cannot draw this landscape");
    contourCache.set(landscape, data);
  }
  return contourCache.get(landscape);
}

function element(tag, attributes = {}, parent = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  if (parent) parent.appendChild(node);
  return node;
}

function formatNumber(value) {
  if (value === null || value === undefined) return "diverged";
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e4)) return value.toExponential(2);
  return Number(value.toPrecision(4)).toString();
}

// A hex colour moved towards black (amount < 0) or white (amount > 0).
function shade(hex, amount) {
  const channels = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const target = amount < 0 ? 0 : 255;
  const mixed = channels.map((c) => Math.round(c + (target - c) * Math.abs(amount)));
  return `#${mixed.map((c) => c.toString(16).padStart(2, "0")).join("")}`;
}

// ------------------------------------------------------------------------------ sliders

function sliderToValue(slider, position) {
  const t = position / 1000;
  const low = slider.low_value, high = slider.high;
  if (slider.scale === "log") {
    return 10 ** (Math.log10(low) + t * (Math.log10(high) - Math.log10(low)));
  }
  if (slider.scale === "log1m") {
    const a = Math.log10(1 - low), b = Math.log10(1 - high);
    return 1 - 10 ** (a + t * (b - a));
  }
  return low + t * (high - low);
}

function valueToSlider(slider, value) {
  const low = slider.low_value, high = slider.high;
  let t;
  if (slider.scale === "log") t = (Math.log10(value) - Math.log10(low)) / (Math.log10(high) - Math.log10(low));
  else if (slider.scale === "log1m") {
    const a = Math.log10(1 - low), b = Math.log10(1 - high);
    t = (Math.log10(1 - value) - a) / (b - a);
  } else t = (value - low) / (high - low);
  return Math.round(Math.min(1, Math.max(0, t)) * 1000);
}

// ------------------------------------------------------------------------------ the widget

class RaceWidget {
  constructor(container, config) {
    this.container = container;
    this.config = config;
    this.generation = 0;
    // The same optimizer raced several times (a learning-rate lesson) gets shades of its palette
    // colour and a number, so its runs stay apart in the plot, the legend and the sliders.
    const counts = {};
    this.styles = config.optimizers.map((racer) => {
      const seen = counts[racer.key] || 0;
      counts[racer.key] = seen + 1;
      return { seen };
    });
    // A racer with a learning-rate schedule is named by it ("sgd · cosine").
    this.scheduled = config.optimizers.some((racer) => racer.schedule);
    this.styles.forEach((style, index) => {
      const racer = config.optimizers[index];
      const repeated = counts[racer.key] > 1;
      if (racer.schedule) style.label = `${racer.key} · ${racer.schedule.name}`;
      else style.label = repeated ? `${racer.key} #${style.seen + 1}` : racer.key;
      style.colour = shade(racer.colour || "#333333", [0, -0.45, 0.5, -0.7][style.seen % 4]);
    });
    container.classList.add("ready");
    const plots = element("div", { class: "plots" }, container);
    this.map = element("canvas", { class: "landscape", width: 460, height: 400, "aria-label": "race paths on the landscape's contour lines" }, plots);
    // With schedules, the lr factor of every step is drawn under the loss curve, on the same steps.
    const curves = this.scheduled ? element("div", { class: "curves" }, plots) : plots;
    this.curve = element("canvas", { class: "loss-curve", width: 420, height: this.scheduled ? 264 : 400, "aria-label": "loss per step" }, curves);
    this.factor = this.scheduled
      ? element("canvas", { class: "lr-factor", width: 420, height: 124, "aria-label": "learning-rate factor per step" }, curves)
      : null;
    this.legend = element("ul", { class: "legend" }, container);
    this.sliders = element("div", { class: "sliders" }, container);
    this.status = element("p", { class: "status", role: "status" }, container);
    this.buildSliders();
  }

  buildSliders() {
    this.sliders.textContent = "";
    for (const slider of this.config.sliders || []) {
      const row = element("label", { class: "slider" }, this.sliders);
      const name = `${this.styles[slider.racer].label} · ${slider.name}`;
      element("span", { class: "slider-name", text: name }, row);
      const input = element("input", {
        type: "range", min: 0, max: 1000, step: 1,
        "data-optimizer": slider.key, "data-name": slider.name,
        value: valueToSlider(slider, slider.value),
      }, row);
      const shown = element("output", { text: formatNumber(slider.value) }, row);
      let timer = null;
      input.addEventListener("input", () => {
        const value = Number(sliderToValue(slider, Number(input.value)).toPrecision(4));
        shown.textContent = formatNumber(value);
        this.config.optimizers[slider.racer].hyperparameters[slider.name] = value;
        clearTimeout(timer);
        timer = setTimeout(() => this.run(), 120);
      });
    }
  }

  async run() {
    const generation = ++this.generation;
    this.container.dataset.state = "running";
    this.status.textContent = "Racing…";
    try {
      const [lines, race] = await Promise.all([
        contoursOf(this.config.landscape),
        postJSON("/api/race", {
          landscape: this.config.landscape,
          start: this.config.start,
          steps: this.config.steps,
          optimizers: this.config.optimizers.map((o) => (o.schedule
            ? { key: o.key, hyperparameters: o.hyperparameters, schedule: o.schedule }
            : { key: o.key, hyperparameters: o.hyperparameters })),
        }),
      ]);
      if (generation !== this.generation) return;
      this.animate(lines, race, generation);
    } catch (error) {
      if (generation !== this.generation) return;
      this.container.dataset.state = "error";
      this.status.textContent = error.message;
      this.status.classList.add("error");
    }
  }

  colourOf(index) {
    return this.styles[index].colour;
  }

  animate(lines, race, generation) {
    this.status.classList.remove("error");
    this.legend.textContent = "";
    race.runs.forEach((run, index) => {
      const item = element("li", {}, this.legend);
      element("span", { class: "swatch", style: `background:${this.colourOf(index)}` }, item);
      const settings = Object.entries(run.hyperparameters)
        .filter(([name]) => name in (this.config.optimizers[index].hyperparameters || {}) || name === "lr")
        .map(([name, value]) => `${name}=${formatNumber(value)}`).join(", ");
      element("span", { text: `${this.styles[index].label} (${settings}): final loss ${formatNumber(run.final_loss)}` }, item);
    });
    const duration = 1600;
    const began = performance.now();
    const frame = (now) => {
      if (generation !== this.generation) return;
      const fraction = Math.min(1, (now - began) / duration);
      const upTo = Math.round(fraction * race.steps);
      this.drawMap(lines, race, upTo);
      this.drawCurve(race, upTo);
      if (this.factor) this.drawFactor(race, upTo);
      if (fraction < 1) {
        requestAnimationFrame(frame);
      } else {
        this.container.dataset.state = "drawn";
        this.container.dataset.finalLosses = JSON.stringify(race.runs.map((r) => r.final_loss));
        const diverged = race.runs.filter((r) => r.diverged).length;
        this.status.textContent = `${race.steps} steps on ${race.landscape.title}` + (diverged ? `; ${diverged} diverged` : "");
      }
    };
    requestAnimationFrame(frame);
  }

  drawMap(lines, race, upTo) {
    const canvas = this.map, context = canvas.getContext("2d");
    const pad = 28, width = canvas.width - 2 * pad, height = canvas.height - 2 * pad;
    context.clearRect(0, 0, canvas.width, canvas.height);
    context.fillStyle = "#fbfaf7";
    context.fillRect(0, 0, canvas.width, canvas.height);
    const [[xLow, xHigh]] = lines.domain;
    let yLow, yHigh;
    if (lines.dim === 2) [yLow, yHigh] = lines.domain[1];
    else {
      const values = lines.curve[1].filter((v) => v !== null).sort((a, b) => a - b);
      yLow = values[0];
      yHigh = values[Math.floor(values.length * 0.98)];
      const margin = (yHigh - yLow) * 0.08 || 1;
      yLow -= margin; yHigh += margin;
    }
    const px = (x) => pad + ((x - xLow) / (xHigh - xLow)) * width;
    const py = (y) => pad + height - ((y - yLow) / (yHigh - yLow)) * height;
    context.save();
    context.beginPath();
    context.rect(pad, pad, width, height);
    context.clip();
    if (lines.dim === 2) {
      const count = lines.levels.length;
      lines.levels.forEach((level, index) => {
        const shade = Math.round(120 + (index / Math.max(1, count - 1)) * 110);
        context.strokeStyle = `rgb(${shade - 60}, ${shade - 20}, ${shade + 20})`;
        context.lineWidth = 1;
        for (const [xs, ys] of level.lines) {
          context.beginPath();
          xs.forEach((x, i) => (i ? context.lineTo(px(x), py(ys[i])) : context.moveTo(px(x), py(ys[i]))));
          context.stroke();
        }
      });
    } else {
      context.strokeStyle = "#6b7a99";
      context.lineWidth = 1.5;
      context.beginPath();
      let drawing = false;
      lines.curve[0].forEach((x, i) => {
        const y = lines.curve[1][i];
        if (y === null) { drawing = false; return; }
        if (drawing) context.lineTo(px(x), py(y)); else context.moveTo(px(x), py(y));
        drawing = true;
      });
      context.stroke();
    }
    race.runs.forEach((run, index) => {
      const point = (t) => (lines.dim === 2 ? run.path[t] : [run.path[t][0], run.loss[t]]);
      context.strokeStyle = this.colourOf(index);
      context.lineWidth = 2;
      context.beginPath();
      let last = null;
      for (let t = 0; t <= upTo && t < run.path.length; t++) {
        const p = point(t);
        if (p[0] === null || p[1] === null) break;
        if (last === null) context.moveTo(px(p[0]), py(p[1])); else context.lineTo(px(p[0]), py(p[1]));
        last = p;
      }
      context.stroke();
      if (last !== null) {
        context.fillStyle = this.colourOf(index);
        context.strokeStyle = "#222";
        context.beginPath();
        context.arc(px(last[0]), py(last[1]), 5, 0, 2 * Math.PI);
        context.fill();
        context.stroke();
      }
    });
    context.restore();
    context.strokeStyle = "#999";
    context.strokeRect(pad, pad, width, height);
    context.fillStyle = "#444";
    context.font = "12px system-ui, sans-serif";
    context.fillText(formatNumber(xLow), pad, canvas.height - 8);
    context.fillText(formatNumber(xHigh), pad + width - 24, canvas.height - 8);
    context.fillText(lines.dim === 2 ? "x →" : "x → (height: loss)", pad + width / 2 - 16, canvas.height - 8);
  }

  drawCurve(race, upTo) {
    const canvas = this.curve, context = canvas.getContext("2d");
    const pad = 44, width = canvas.width - pad - 14, height = canvas.height - 2 * 28;
    context.clearRect(0, 0, canvas.width, canvas.height);
    context.fillStyle = "#fff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    // Log of the gap above the known minimum, or a symmetric log where none is known.
    const minimum = race.landscape.minimum;
    const transform = minimum === null
      ? (l) => Math.sign(l) * Math.log10(1 + Math.abs(l))
      : (l) => Math.log10(Math.max(l - minimum, 1e-12));
    const inverse = minimum === null
      ? (v) => Math.sign(v) * (10 ** Math.abs(v) - 1)
      : (v) => 10 ** v;
    let low = Infinity, high = -Infinity;
    for (const run of race.runs) {
      for (const l of run.loss) {
        if (l === null) continue;
        const v = transform(l);
        low = Math.min(low, v); high = Math.max(high, v);
      }
    }
    if (!Number.isFinite(low)) return;
    if (high - low < 1e-9) { high += 1; low -= 1; }
    const px = (t) => pad + (t / race.steps) * width;
    const py = (v) => 28 + height - ((v - low) / (high - low)) * height;
    context.strokeStyle = "#ccc";
    context.strokeRect(pad, 28, width, height);
    context.fillStyle = "#444";
    context.font = "12px system-ui, sans-serif";
    context.fillText(minimum === null ? "loss (log scale both ways from 0)" : "loss − minimum (log scale)", pad, 18);
    context.fillText(formatNumber(inverse(high)), 2, 34);
    context.fillText(formatNumber(inverse(low)), 2, 28 + height);
    context.fillText("step →", pad + width / 2 - 20, canvas.height - 8);
    race.runs.forEach((run, index) => {
      context.strokeStyle = this.colourOf(index);
      context.lineWidth = 2;
      context.beginPath();
      for (let t = 0; t <= upTo && t < run.loss.length; t++) {
        if (run.loss[t] === null) {
          context.stroke();
          context.fillStyle = this.colourOf(index);
          context.fillText("✕ diverged", px(t) - 8, 40);
          break;
        }
        const y = py(transform(run.loss[t]));
        if (t === 0) context.moveTo(px(t), y); else context.lineTo(px(t), y);
      }
      context.stroke();
    });
  }

  // The multiplier of each racer's base lr at every step (the server sends it; a racer without a
  // schedule keeps 1), on the loss curve's step axis.
  drawFactor(race, upTo) {
    const canvas = this.factor, context = canvas.getContext("2d");
    const pad = 44, top = 22, width = canvas.width - pad - 14, height = canvas.height - top - 20;
    context.clearRect(0, 0, canvas.width, canvas.height);
    context.fillStyle = "#fff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    const factors = race.runs.map((run) => run.lr_factor || new Array(race.steps).fill(1));
    const high = Math.max(1, ...factors.flat()) * 1.08;
    const px = (t) => pad + (t / race.steps) * width;
    const py = (v) => top + height - (v / high) * height;
    context.strokeStyle = "#ccc";
    context.strokeRect(pad, top, width, height);
    context.fillStyle = "#444";
    context.font = "12px system-ui, sans-serif";
    context.fillText("learning-rate factor η_t / η_0", pad, 14);
    context.fillText(formatNumber(high), 2, top + 10);
    context.fillText("0", 2, top + height);
    context.fillText("step →", pad + width / 2 - 20, canvas.height - 4);
    factors.forEach((values, index) => {
      context.strokeStyle = this.colourOf(index);
      context.lineWidth = 2;
      context.setLineDash([[], [6, 3], [2, 3], [8, 3, 2, 3]][index % 4]);
      context.beginPath();
      for (let t = 0; t < values.length && t <= upTo; t++) {
        if (t === 0) context.moveTo(px(t), py(values[t])); else context.lineTo(px(t), py(values[t]));
      }
      context.stroke();
    });
    context.setLineDash([]);
  }
}

// ------------------------------------------------------------------------------ quizzes

function chosenIndices(fieldset) {
  return [...fieldset.querySelectorAll("input:checked")].map((input) => Number(input.value));
}

function showFeedback(fieldset, feedback) {
  fieldset.classList.remove("right", "wrong");
  fieldset.classList.add(feedback.correct ? "right" : "wrong");
  const labels = fieldset.querySelectorAll("label.choice");
  feedback.choices.forEach((choice, index) => {
    const label = labels[index];
    label.classList.toggle("correct-choice", choice.correct);
    label.classList.toggle("chosen-wrong", choice.chosen && !choice.correct);
    const explanation = label.querySelector(".explanation");
    explanation.innerHTML = choice.explanation_html;
    explanation.hidden = !(choice.chosen || choice.correct);
  });
  const verdict = fieldset.querySelector(".verdict");
  verdict.hidden = false;
  verdict.textContent = feedback.correct ? "Correct." : "Not quite: the explanations say why.";
}

function setUpQuiz(form) {
  const quiz = form.dataset.quiz;
  const immediate = form.dataset.immediate === "true";
  const check = async (fieldset) => {
    const choices = chosenIndices(fieldset);
    if (!choices.length) return;
    const feedback = await postJSON(`/api/quizzes/${quiz}/questions/${fieldset.dataset.question}/check`, { choices });
    showFeedback(fieldset, feedback);
  };
  if (immediate) {
    form.querySelectorAll("fieldset.question").forEach((fieldset) => {
      if (fieldset.dataset.multiple === "true") {
        fieldset.querySelector("button.check").addEventListener("click", () => check(fieldset));
      } else {
        fieldset.addEventListener("change", () => check(fieldset));
      }
    });
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answers = {};
    form.querySelectorAll("fieldset.question").forEach((fieldset) => {
      answers[fieldset.dataset.question] = chosenIndices(fieldset);
    });
    const score = form.querySelector(".score");
    try {
      const result = await postJSON(`/api/quizzes/${quiz}/attempts`, { answers });
      const review = form.querySelector(".wrong-review");
      review.textContent = "";
      result.questions.forEach((feedback) => {
        const fieldset = form.querySelector(`fieldset[data-question="${feedback.id}"]`);
        showFeedback(fieldset, feedback);
        if (!feedback.correct) {
          const item = element("div", { class: "review-item" }, review);
          element("h3", {}, item).innerHTML = fieldset.querySelector("legend").innerHTML;
          const labels = fieldset.querySelectorAll("label.choice .choice-text");
          feedback.choices.forEach((choice, index) => {
            if (!choice.chosen && !choice.correct) return;
            const line = element("p", { class: choice.correct ? "correct-choice" : "chosen-wrong" }, item);
            line.innerHTML = `${choice.correct ? "✓ correct" : "✗ your answer"}: ${labels[index].innerHTML}. ${choice.explanation_html}`;
          });
        }
      });
      review.hidden = review.childElementCount === 0;
      if (!review.hidden) review.insertAdjacentElement("afterbegin", element("h2", { text: "Review what you missed" }));
      score.hidden = false;
      score.textContent = result.message;
      score.classList.remove("error");
      score.scrollIntoView({ block: "center" });
    } catch (error) {
      score.hidden = false;
      score.textContent = error.message;
      score.classList.add("error");
    }
  });
}

// ------------------------------------------------------------------------------ the playground

function parseSettings(text) {
  const settings = {};
  for (const piece of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [name, value] = piece.split("=").map((p) => (p || "").trim());
    const number = Number(value);
    if (!name || value === "" || !Number.isFinite(number)) throw new Error(`write name=value, got "${piece}"`);
    settings[name] = number;
  }
  return settings;
}

function setUpPlayground(form) {
  const colours = JSON.parse(form.dataset.colours);
  const container = document.getElementById("playground-widget");
  let widget = null;
  const readForm = () => {
    const optimizers = [];
    form.querySelectorAll(".racer").forEach((row) => {
      const key = row.querySelector("select").value;
      if (!key) return;
      const hyperparameters = parseSettings(row.querySelector("input").value);
      optimizers.push({ key, hyperparameters, colour: colours[key] });
    });
    if (!optimizers.length) throw new Error("pick at least one optimizer");
    const start = form.start.value.split(",").map((v) => Number(v.trim()));
    if (start.some((v) => !Number.isFinite(v))) throw new Error("start: numbers separated by a comma, e.g. -1.5,2");
    return { landscape: form.landscape.value.trim(), start, steps: Number(form.steps.value), optimizers, sliders: [] };
  };
  const query = (config) => {
    const parameters = new URLSearchParams();
    parameters.set("landscape", config.landscape);
    for (const o of config.optimizers) {
      const settings = Object.entries(o.hyperparameters).map(([n, v]) => `${n}=${v}`).join(",");
      parameters.append("opt", settings ? `${o.key}:${settings}` : o.key);
    }
    parameters.set("start", config.start.join(","));
    parameters.set("steps", String(config.steps));
    return parameters.toString();
  };
  const run = () => {
    let config;
    try {
      config = readForm();
    } catch (error) {
      container.dataset.state = "error";
      container.textContent = error.message;
      return;
    }
    history.replaceState(null, "", `${location.pathname}?${query(config)}`);
    container.textContent = "";
    widget = new RaceWidget(container, config);
    widget.run();
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); run(); });
  run();
}

// ------------------------------------------------------------------------------ the advisor

function setUpAdvisor(form) {
  const status = document.getElementById("advisor-status");
  const bar = document.getElementById("advisor-progress");
  const result = document.getElementById("advisor-result");
  const show = (job) => {
    document.getElementById("advice").hidden = false;
    const fraction = job.total ? job.done / job.total : 0;
    bar.value = fraction;
    const words = { queued: "Waiting for the arena…", running: `Training: ${job.done} of ${job.total || "?"} runs`, done: "Done.", failed: `The comparison failed: ${job.error}` };
    status.textContent = words[job.status];
    status.classList.toggle("error", job.status === "failed");
    document.getElementById("advice").dataset.state = job.status;
    if (job.status !== "done") return;
    bar.value = 1;
    result.hidden = false;
    document.getElementById("recommendation").textContent = job.result.recommendation.text;
    const table = document.getElementById("advisor-summary");
    table.textContent = "";
    const head = element("tr", {}, element("thead", {}, table));
    for (const title of ["optimizer", "chosen settings", `test ${job.result.metric || "metric"}`, "train loss", "status"]) element("th", { text: title }, head);
    const body = element("tbody", {}, table);
    for (const row of job.result.summary) {
      const line = element("tr", {}, body);
      const settings = Object.entries(row.hyperparameters || {}).map(([n, v]) => `${n}=${formatNumber(v)}`).join(", ");
      const metric = row.test_metric === null ? "–" : `${formatNumber(row.test_metric)} ± ${formatNumber(row.test_metric_std || 0)}`;
      for (const cell of [row.title, settings, metric, formatNumber(row.train_loss), row.status + (row.reason ? `: ${row.reason}` : "")]) element("td", { text: cell }, line);
    }
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const optimizers = [...form.querySelectorAll("input[name=optimizer]:checked")].map((input) => input.value);
    result.hidden = true;
    try {
      if (optimizers.length > Number(form.dataset.max)) throw new Error(`pick at most ${form.dataset.max} optimizers`);
      let job = await postJSON("/api/advisor", { task: form.task.value, optimizers });
      show(job);
      while (job.status === "queued" || job.status === "running") {
        await new Promise((resolve) => setTimeout(resolve, 500));
        const response = await fetch(`/api/advisor/${job.id}`);
        job = await response.json();
        show(job);
      }
    } catch (error) {
      document.getElementById("advice").hidden = false;
      status.textContent = error.message;
      status.classList.add("error");
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".race-widget[data-config]").forEach((container) => {
    new RaceWidget(container, JSON.parse(container.dataset.config)).run();
  });
  document.querySelectorAll("form.quiz").forEach(setUpQuiz);
  const playground = document.getElementById("playground");
  if (playground) setUpPlayground(playground);
  const advisorForm = document.getElementById("advisor");
  if (advisorForm) setUpAdvisor(advisorForm);
});
