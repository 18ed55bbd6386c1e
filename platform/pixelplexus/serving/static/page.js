// The try-it page: builds its form from the API's own description (/openapi.json) and calls the public
// routes (/v1/enhance, /v1/colorize, /v1/generate, /v1/models) with the API key the person enters.
"use strict";

const KEY_STORAGE = "pixelplexus-api-key"; // sessionStorage: gone when the tab closes
const $ = (id) => document.getElementById(id);
let spec = null; // /openapi.json
let lastUrls = []; // object URLs of the shown images, revoked when new ones come

function headers(extra = {}) {
  const key = $("key").value.trim();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

// ------------------------------------------------------------------------------------ the API's schema
function resolve(schema) {
  while (schema && schema.$ref) {
    schema = schema.$ref.split("/").slice(1).reduce((node, part) => node[part], spec);
  }
  return schema || {};
}

// {anyOf: [{type: integer, enum}, {type: null}], default, description} → one flat schema
function flat(schema) {
  schema = resolve(schema);
  const members = (schema.anyOf || []).map(resolve).filter((member) => member.type !== "null");
  return members.length ? { ...members[0], ...schema, anyOf: undefined } : schema;
}

// task → {path, fields: [{name, schema, description}], body: "query" | "json", upload: bool}
function tasks() {
  const found = {};
  for (const [path, item] of Object.entries(spec.paths)) {
    const match = path.match(/^\/v1\/(\w+)$/);
    if (!match || !item.post) continue;
    const post = item.post;
    const content = (post.requestBody || {}).content || {};
    let fields = (post.parameters || []).filter((p) => p.in === "query")
      .map((p) => ({ name: p.name, schema: flat(p.schema), description: p.description || "" }));
    let body = "query";
    if (content["application/json"]) {
      const properties = flat(content["application/json"].schema).properties || {};
      fields = Object.entries(properties).map(([name, schema]) => ({
        name, schema: flat(schema), description: flat(schema).description || "" }));
      body = "json";
    }
    fields = fields.filter((field) => ["integer", "number", "boolean", "string"].includes(field.schema.type));
    found[match[1]] = { path, fields, body, upload: Boolean(content["multipart/form-data"]) };
  }
  return found;
}

// ------------------------------------------------------------------------------------ the form
function control(field) {
  const { name, schema } = field;
  const id = `option-${name}`;
  const row = document.createElement("div");
  row.className = "row";
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = name.replace(/_/g, " ");
  let input;
  if (schema.enum) {
    input = document.createElement("select");
    input.add(new Option(schema.default == null ? "(default)" : `(default: ${schema.default})`, ""));
    for (const value of schema.enum) input.add(new Option(String(value), String(value)));
  } else if (schema.type === "boolean") {
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = Boolean(schema.default);
  } else {
    input = document.createElement("input");
    input.type = schema.type === "string" ? "text" : "number";
    if (schema.type !== "string") input.step = schema.type === "integer" ? "1" : "any";
    for (const [attribute, key] of [["min", "minimum"], ["min", "exclusiveMinimum"], ["max", "maximum"]]) {
      if (schema[key] != null) input[attribute] = schema[key];
    }
    input.placeholder = schema.default == null ? "(default)" : `default: ${schema.default}`;
  }
  input.id = id;
  input.name = name;
  input.dataset.type = schema.type;
  const help = document.createElement("small");
  help.id = `${id}-help`;
  help.textContent = field.description;
  input.setAttribute("aria-describedby", help.id);
  row.append(label, input, help);
  return row;
}

function showTask() {
  const task = tasks()[$("task").value];
  const fieldset = $("options");
  fieldset.replaceChildren(fieldset.querySelector("legend"));
  for (const field of task.fields) fieldset.append(control(field));
  $("upload").hidden = !task.upload;
  $("file").required = task.upload;
  const model = (window.models || {})[$("task").value];
  $("model").textContent = model
    ? `model ${model.reference} (version ${String(model.version).slice(0, 12)}${model.scale ? `, ×${model.scale}` : ""})`
    : "";
}

function values(task) {
  const given = {};
  for (const field of task.fields) {
    const input = $(`option-${field.name}`);
    if (input.type === "checkbox") {
      if (input.checked !== Boolean(field.schema.default)) given[field.name] = input.checked;
    } else if (input.value !== "") {
      given[field.name] = input.dataset.type === "string" ? input.value : Number(input.value);
    }
  }
  return given;
}

// ------------------------------------------------------------------------------------ answers
function words(code) {
  const text = String(code || "error").replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

async function explain(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    message = `${words(body.error)}: ${body.detail}` + (body.request_id ? ` (request ${body.request_id})` : "");
  } catch (ignored) { /* not JSON: the status line says it */ }
  if (response.status === 401) {
    message += " Enter the service's API key above.";
    $("key").focus();
  }
  return message;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  lastUrls.push(url);
  return url;
}

function showImage(blob, task, inputFile) {
  const url = objectUrl(blob);
  $("output-image").src = url;
  $("compare-after").src = url;
  const extension = (blob.type.split("/")[1] || "png").replace("jpeg", "jpg");
  $("download").href = url;
  $("download").download = `pixelplexus-${task}.${extension}`;
  const compare = Boolean(inputFile);
  $("input-image").closest("figure").hidden = !compare;
  $("compare-box").hidden = !compare;
  if (compare) {
    const before = objectUrl(inputFile);
    $("input-image").src = before;
    $("compare-before").src = before;
  }
  $("output-image").onload = () => {
    const image = $("output-image");
    $("output-caption").textContent = `Result, ${image.naturalWidth} × ${image.naturalHeight}`;
    $("compare-before").style.aspectRatio = `${image.naturalWidth} / ${image.naturalHeight}`;
  };
  $("input-image").onload = () => {
    const image = $("input-image");
    $("input-caption").textContent = `Input, ${image.naturalWidth} × ${image.naturalHeight}`;
  };
  $("result").hidden = false;
}

function showStrip(images) {
  const strip = $("strip");
  strip.replaceChildren();
  for (const image of images) {
    const bytes = Uint8Array.from(atob(image.png), (c) => c.charCodeAt(0));
    const url = objectUrl(new Blob([bytes], { type: "image/png" }));
    const caption = image.t == null
      ? `seed ${image.seed}`
      : `seed ${image.seed} → ${image.to_seed}, t = ${image.t.toFixed(2)}`;
    const item = document.createElement("li");
    item.innerHTML = "<figure><a><img></a><figcaption></figcaption></figure>";
    item.querySelector("a").href = url;
    item.querySelector("a").download = `pixelplexus-${caption.replace(/\W+/g, "-")}.png`;
    item.querySelector("img").src = url;
    item.querySelector("img").alt = `Generated image, ${caption}`;
    item.querySelector("figcaption").textContent = caption;
    strip.append(item);
  }
  $("strip-box").hidden = false;
}

// ------------------------------------------------------------------------------------ running
async function run(event) {
  event.preventDefault();
  const name = $("task").value;
  const task = tasks()[name];
  const given = values(task);
  const file = $("file").files[0];
  let request;
  if (task.body === "json") {
    request = { method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(given) };
  } else {
    if (!file) { showError("Choose an image first."); $("file").focus(); return; }
    const form = new FormData();
    form.append("file", file);
    request = { method: "POST", headers: headers(), body: form };
  }
  const query = task.body === "query" ? new URLSearchParams(given).toString() : "";
  showError("");
  $("submit").disabled = true;
  $("status").textContent = `Running ${name}…`;
  for (const url of lastUrls.splice(0)) URL.revokeObjectURL(url);
  $("result").hidden = true;
  $("strip-box").hidden = true;
  try {
    const response = await fetch(task.path.slice(1) + (query ? `?${query}` : ""), request);
    if (!response.ok) {
      showError(await explain(response));
      $("status").textContent = "";
      return;
    }
    const type = response.headers.get("content-type") || "";
    if (type.startsWith("application/json")) {
      showStrip((await response.json()).images);
    } else {
      showImage(await response.blob(), name, task.upload ? file : null);
    }
    const seeds = response.headers.get("X-Seeds");
    $("status").textContent = `Done: ${name}` + (seeds ? ` (seeds ${seeds})` : "") + ".";
  } catch (error) {
    showError(`The service did not answer: ${error.message}`);
    $("status").textContent = "";
  } finally {
    $("submit").disabled = false;
  }
}

async function loadModels() {
  const response = await fetch("v1/models", { headers: headers() });
  if (!response.ok) {
    if (response.status === 401 && !$("key").value) {
      $("status").textContent = "This service needs an API key: enter it above.";
    } else {
      showError(await explain(response));
    }
    return;
  }
  showError("");
  window.models = Object.fromEntries((await response.json()).models.map((model) => [model.task, model]));
  showTask();
}

async function start() {
  $("key").value = sessionStorage.getItem(KEY_STORAGE) || "";
  $("key").addEventListener("change", () => {
    sessionStorage.setItem(KEY_STORAGE, $("key").value.trim());
    loadModels();
  });
  const response = await fetch("openapi.json");
  if (!response.ok) { showError(await explain(response)); return; }
  spec = await response.json();
  for (const name of Object.keys(tasks())) $("task").add(new Option(name, name));
  $("task").addEventListener("change", showTask);
  showTask();
  $("run").addEventListener("submit", run);
  $("slider").addEventListener("input", () => {
    $("compare").style.setProperty("--split", `${$("slider").value}%`);
  });
  const zone = $("upload");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer.files.length) $("file").files = event.dataTransfer.files;
  });
  await loadModels();
}

start();
