// The reactpal playground: ask a question, watch the run unfold from the server-sent events of
// POST /ask, keep threads, give feedback. Every call goes to this service only, with the API
// key the user typed (sessionStorage, never a URL). Text from the model or the server is only
// ever set as textContent: the page's CSP (Trusted Types) refuses HTML made from strings.
"use strict";

const KEY_STORE = "reactpal.apiKey";
const $ = (id) => document.getElementById(id);
const state = {
  runId: null, threadId: null, score: null, running: false, abort: null, collections: [],
};
let keyWaiters = [];

// -- calling the API -------------------------------------------------------------------------

function authHeaders(extra) {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
}

// A fetch that asks for a key on 401 and tries again with it. Other errors are thrown as an
// Error whose message says the status, title and detail of the problem+json answer.
async function request(method, path, body, { accept = "application/json", signal } = {}) {
  for (;;) {
    const init = { method, signal, cache: "no-store", headers: authHeaders({ Accept: accept }) };
    if (body instanceof FormData) {
      init.body = body; // multipart: the browser writes the Content-Type with its boundary
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      await askForKey((await problemOf(response)).detail);
      continue;
    }
    if (!response.ok) throw await apiError(response);
    return response;
  }
}

async function api(method, path, body) {
  const response = await request(method, path, body);
  return response.status === 204 ? null : response.json();
}

function problemOf(response) {
  return response.json().catch(() => ({ detail: response.statusText || "no details" }));
}

async function apiError(response) {
  const problem = await problemOf(response);
  const retry = response.headers.get("Retry-After");
  const message = `${response.status} ${problem.title || response.statusText}: ` +
    `${problem.detail}${retry ? ` Retry in ${retry} s.` : ""}`;
  return Object.assign(new Error(message), { status: response.status });
}

// -- the API key -----------------------------------------------------------------------------

function askForKey(reason) {
  $("key-reason").textContent = `${reason || "This server needs an API key"}. Enter your key.`;
  $("key-form").hidden = false;
  $("key-input").focus();
  return new Promise((resolve, reject) => keyWaiters.push({ resolve, reject }));
}

// Settles the calls waiting for a key; says whether there were any.
function closeKeyForm(settle) {
  $("key-form").hidden = true;
  $("key-input").value = "";
  const waiting = keyWaiters.splice(0);
  waiting.forEach(settle);
  return waiting.length > 0;
}

function onKeySubmit(event) {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORE, key);
  const retried = closeKeyForm((waiter) => waiter.resolve());
  if (!retried && !state.running) refreshAll(); // a changed key: its own threads
}

function onKeyCancel() {
  const refused = Object.assign(new Error("401: no API key given"), { status: 401 });
  closeKeyForm((waiter) => waiter.reject(refused));
}

function onKeyForget() {
  sessionStorage.removeItem(KEY_STORE);
  $("key-reason").textContent = "Key forgotten: this tab no longer sends one.";
}

// -- building the page -----------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function code(text, language) {
  return el("pre", {}, el("code", language ? { class: `language-${language}`, text } : { text }));
}

// Shows a message in an element, or hides the element when there is none.
function say(where, message) {
  where.textContent = message || "";
  where.hidden = !message;
}

// -- limits, actions, threads ----------------------------------------------------------------

async function loadConfig() {
  const config = await api("GET", "/ui/config.json");
  $("samples").max = String(config.max_samples);
  $("question").maxLength = config.max_question_chars;
}

async function loadActions() {
  try {
    // An MCP server's tool outside ALLOWED_ACTIONS is listed with allowed: false; no run may use it.
    const allowed = (await api("GET", "/actions")).filter((action) => action.allowed !== false);
    $("actions").replaceChildren(...allowed.map(actionCheckbox));
    await loadCollections(allowed.some((action) => action.name === "retrieve"));
  } catch (error) {
    $("actions").replaceChildren(el("span", { class: "error", text: error.message }));
  }
}

function actionCheckbox(action) {
  const always = action.name === "finish";
  const input = el("input", { type: "checkbox", name: "action", value: action.name });
  input.checked = action.available;
  input.disabled = always || !action.available;
  input.dataset.available = String(action.available);
  const why = action.available ? action.description : `unavailable: ${action.unavailable_reason}`;
  const label = el("label", { title: why }, input, ` ${action.name}`);
  if (always) label.append(el("span", { class: "hint", text: " (always)" }));
  const needsCollections = action.name === "retrieve" && !action.available;
  const hint = needsCollections ? " (tick a collection)" : " (unavailable)";
  if (!action.available) label.append(el("span", { class: "hint", text: hint }));
  return label;
}

// The caller's collections, offered when the server allows retrieve: a run that names some
// reads them first (POST /ask "collections").
async function loadCollections(retrieve) {
  let collections = [];
  if (retrieve) {
    try {
      ({ collections } = await api("GET", "/collections"));
    } catch (error) {
      collections = [];
      say($("error"), error.message);
    }
  }
  const ticked = new Set(Array.from(
    document.querySelectorAll('#collections input[name="collection"]:checked'), (box) => box.value));
  state.collections = collections;
  $("collections").replaceChildren(...collections.map((c) => collectionCheckbox(c, ticked)));
  $("collections-fieldset").hidden = !collections.length;
  $("collection-names").replaceChildren(
    ...collections.map((c) => el("option", { value: c.name })));
  $("documents-panel").hidden = !retrieve;
  syncRetrieve();
}

// Add a file to a collection, making the collection first when it is new.
async function onAddDocument(event) {
  event.preventDefault();
  const name = $("document-collection").value.trim();
  const file = $("document-file").files[0];
  say($("document-status"), "");
  say($("document-error"), "");
  if (!name || !file) return;
  $("document-add").disabled = true;
  try {
    if (!state.collections.some((c) => c.name === name)) {
      await api("POST", "/collections", { name });
    }
    const form = new FormData();
    form.append("file", file, file.name);
    const path = `/collections/${encodeURIComponent(name)}/documents`;
    const added = await api("POST", path, form);
    say($("document-status"), `Added ${added.source} to ${name}: ${added.chunks} passages.`);
    $("document-file").value = "";
    await loadCollections(true); // the panel is shown only when retrieve is allowed
  } catch (error) {
    say($("document-error"), error.message);
  } finally {
    $("document-add").disabled = false;
  }
}

// retrieve has nothing to read until a collection is ticked: then it is on (and sent).
function syncRetrieve() {
  const box = document.querySelector('#actions input[value="retrieve"]');
  if (!box || box.dataset.available === "true") return;
  const ticked = document.querySelector('#collections input[name="collection"]:checked') !== null;
  box.disabled = !ticked;
  box.checked = ticked;
}

function collectionCheckbox(collection, ticked) {
  const input = el("input", { type: "checkbox", name: "collection", value: collection.name });
  input.checked = ticked.has(collection.name);
  input.addEventListener("change", syncRetrieve);
  const counts = `${collection.documents} documents, ${collection.chunks} passages`;
  const title = collection.description ? `${collection.description} (${counts})` : counts;
  return el("label", { title }, input, ` ${collection.name}`);
}

async function loadThreads() {
  try {
    const { threads } = await api("GET", "/threads?limit=50");
    const none = threadItem(null, "No thread", "runs stand alone");
    $("thread-list").replaceChildren(none, ...threads.map(threadOf));
    say($("thread-error"), "");
  } catch (error) {
    say($("thread-error"), error.message);
  }
}

function threadOf(thread) {
  const when = new Date(thread.created_at).toLocaleString();
  return threadItem(thread.thread_id, thread.metadata.name || "Unnamed thread", when);
}

function threadItem(threadId, name, note) {
  const button = el("button", { type: "button", class: "thread" }, name,
    el("small", { text: note }));
  button.dataset.threadId = threadId || "";
  button.setAttribute("aria-pressed", String(threadId === state.threadId));
  button.addEventListener("click", () => selectThread(threadId));
  return el("li", {}, button);
}

async function selectThread(threadId) {
  state.threadId = threadId;
  for (const button of document.querySelectorAll("#thread-list .thread")) {
    button.setAttribute("aria-pressed", String((button.dataset.threadId || null) === threadId));
  }
  await loadTurns();
}

async function loadTurns() {
  $("history").hidden = state.threadId === null;
  if (state.threadId === null) return;
  let items;
  try {
    const { turns } = await api("GET", `/threads/${state.threadId}`);
    items = turns.map((turn) => el("li", {},
      el("p", { class: "turn-q", text: turn.question }),
      el("p", { class: "turn-a", text: turn.answer ?? `(no answer: ${turn.status})` })));
    if (!items.length) items = [el("li", { class: "hint", text: "No turns yet." })];
  } catch (error) {
    items = [el("li", { class: "error", text: error.message })];
  }
  $("turns").replaceChildren(...items);
}

async function onNewThread(event) {
  event.preventDefault();
  const name = $("thread-name").value.trim();
  try {
    const thread = await api("POST", "/threads", { metadata: name ? { name } : {} });
    $("thread-name").value = "";
    state.threadId = thread.thread_id;
    await loadThreads();
    await loadTurns();
  } catch (error) {
    say($("thread-error"), error.message);
  }
}

function refreshAll() {
  loadConfig().catch((error) => say($("error"), error.message));
  loadActions();
  loadThreads().then(loadTurns);
}

// -- a run -----------------------------------------------------------------------------------

const mode = () => document.querySelector('input[name="mode"]:checked').value;

function onModeChange() {
  const pal = mode() === "pal";
  $("samples").disabled = !pal;
  $("actions-fieldset").disabled = pal; // a PAL run is one Python program
}

function askBody() {
  const body = { question: $("question").value, mode: mode() };
  if (body.mode === "pal") body.samples = Number($("samples").value);
  else {
    const boxes = document.querySelectorAll('#actions input[name="action"]:checked:enabled');
    body.actions = Array.from(boxes, (box) => box.value);
    if (!body.actions.length) throw new Error("Choose at least one action.");
  }
  const named = document.querySelectorAll('#collections input[name="collection"]:checked');
  if (named.length) {
    body.collections = Array.from(named, (box) => box.value);
    // Documents are read with retrieve: a ReAct run that names them needs it.
    if (body.actions && !body.actions.includes("retrieve")) body.actions.push("retrieve");
  }
  if (state.threadId) body.thread_id = state.threadId;
  return body;
}

async function onRun(event) {
  event.preventDefault();
  if (state.running) return;
  say($("error"), "");
  try {
    const body = askBody();
    startRun();
    await streamRun(body);
  } catch (error) {
    if (error.name !== "AbortError") say($("error"), error.message);
  } finally {
    endRun();
  }
}

function startRun() {
  Object.assign(state, { running: true, runId: null, score: null, abort: new AbortController() });
  $("run").disabled = true;
  $("run-id").textContent = "";
  $("steps").replaceChildren();
  for (const id of ["run-section", "final", "feedback-form", "stored", "stored-box"]) {
    $(id).hidden = true;
  }
}

function endRun() {
  state.running = false;
  $("run").disabled = false;
  $("stop").disabled = true;
  if (state.threadId) loadTurns();
}

// POST /ask with "stream": true, read as server-sent events. (EventSource cannot POST or send
// an Authorization header, so the stream is read and parsed here.)
async function streamRun(body) {
  const options = { accept: "text/event-stream", signal: state.abort.signal };
  const response = await request("POST", "/ask", { ...body, stream: true }, options);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const feed = sseParser((name, data) => EVENTS[name]?.(JSON.parse(data)));
  let ended = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    ended = feed(value) || ended;
  }
  if (!ended) throw new Error("The stream ended before the run did: see the stored run.");
}

// A function fed text chunks, calling onEvent(name, data) for each complete event and saying
// whether a "final" event came. A "\r" at a chunk's end may be half of a "\r\n": kept.
function sseParser(onEvent) {
  let buffer = "";
  let name = "message";
  let data = [];
  return (chunk) => {
    let final = false;
    buffer += chunk;
    const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
    const lines = buffer.slice(0, cut).split(/\r\n|\r|\n/);
    buffer = lines.pop() + buffer.slice(cut);
    for (const line of lines) {
      if (line === "") {
        if (data.length) onEvent(name, data.join("\n"));
        final = final || (name === "final" && data.length > 0);
        [name, data] = ["message", []];
      } else if (!line.startsWith(":")) { // ":" starts a comment (the server's pings)
        const at = line.indexOf(":");
        const field = at < 0 ? line : line.slice(0, at);
        const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      }
    }
    return final;
  };
}

const EVENTS = {
  run: (d) => {
    state.runId = d.run_id;
    $("run-id").textContent = d.run_id;
    $("run-section").hidden = false;
    $("stop").disabled = false;
  },
  thought: (d) => addCard("thought", `Thought · step ${d.step}`, el("p", { text: d.thought })),
  action: (d) => addCard("action",
    `Action · step ${d.step}: ${d.action ?? "nothing could be parsed"}`, actionBody(d)),
  observation: (d) => addCard(d.refused ? "observation refused" : "observation",
    `Observation · step ${d.step}${d.refused ? " (not run)" : ""}`, code(d.observation)),
  final: showFinal,
};

function actionBody(d) {
  if (d.action === "finish") return el("p", { class: "answer", text: d.action_input });
  return code(d.action_input, d.action === "python" ? "python" : null);
}

function addCard(kind, title, body) {
  $("steps").append(el("li", { class: `card ${kind}` }, el("h3", { text: title }), body));
}

function showFinal(d) {
  state.runId = d.run_id;
  $("final-status").textContent = d.status;
  $("final-status").className = `status ${d.status}`;
  $("final-answer").textContent = d.answer ?? "(no answer)";
  say($("final-error"), d.error);
  $("final-stats").textContent = usageText(d);
  const sources = (d.details && d.details.sources) || [];
  $("sources").replaceChildren(...sources.map(sourceItem));
  $("final-sources").hidden = !sources.length;
  const details = Object.keys(d.details || {}).length ? JSON.stringify(d.details, null, 2) : "";
  $("final-details").hidden = !details;
  $("final-details-json").textContent = details;
  $("final").hidden = false;
  resetFeedback();
  $("feedback-form").hidden = !d.stored; // feedback is given on the stored run
  $("stored-link").href = `/runs/${d.run_id}`;
  $("stored-link").textContent = `/runs/${d.run_id}`;
  $("stored").hidden = false;
  $("stop").disabled = true;
}

// A passage the run was shown: "[2] handbook.pdf, page 4 / Leave", those the answer cites marked.
function sourceItem(source) {
  const page = source.page ? `, page ${source.page}` : "";
  const heading = source.heading ? ` / ${source.heading}` : "";
  const item = el("li", { class: source.cited ? "source cited" : "source" },
    el("strong", { text: `[${source.number}] ` }),
    `${source.source}${page}${heading}`,
    el("small", { text: ` (${source.collection})` }));
  if (source.cited) item.append(el("span", { class: "hint", text: " cited" }));
  item.title = source.text || "";
  return item;
}

function usageText(d) {
  const u = d.usage;
  const calls = `${u.llm_calls} LLM call${u.llm_calls === 1 ? "" : "s"}`;
  const tokens = `${u.prompt_tokens + u.completion_tokens} tokens ` +
    `(${u.prompt_tokens} prompt + ${u.completion_tokens} completion)`;
  const stored = d.stored ? "" : ` · not stored: ${d.store_error}`;
  return `${tokens} · ${calls} · ${(d.duration_ms / 1000).toFixed(2)} s${stored}`;
}

async function onStop() {
  $("stop").disabled = true;
  if (!state.runId) return state.abort?.abort();
  try {
    await api("POST", `/runs/${state.runId}/cancel`); // the stream then ends with "cancelled"
  } catch (error) {
    if (error.status !== 409) { // 409: it had ended already
      say($("error"), error.message);
      state.abort?.abort(); // hanging up cancels the run too
    }
  }
}

// -- feedback and the stored run -------------------------------------------------------------

function resetFeedback() {
  setScore(null);
  $("correction").value = "";
  $("feedback-status").textContent = "";
}

function setScore(score) {
  state.score = score;
  $("thumb-up").setAttribute("aria-pressed", String(score === 1));
  $("thumb-down").setAttribute("aria-pressed", String(score === -1));
}

async function onFeedback(event) {
  event.preventDefault();
  const status = $("feedback-status");
  const body = {};
  if (state.score !== null) body.score = state.score;
  const correction = $("correction").value.trim();
  if (correction) body.correction = correction;
  status.className = "error";
  if (!Object.keys(body).length) {
    status.textContent = "Choose Good or Bad, or write a correction, first.";
    return;
  }
  try {
    const saved = await api("POST", `/runs/${state.runId}/feedback`, body);
    const score = saved.score ? `score ${saved.score > 0 ? "+1" : "-1"}` : null;
    const parts = [score, saved.correction ? "correction" : null].filter(Boolean).join(", ");
    const when = new Date(saved.updated_at).toLocaleTimeString();
    status.textContent = `Feedback saved (${parts}) at ${when}.`;
    status.className = "saved";
  } catch (error) {
    status.textContent = error.message;
  }
}

async function onShowStored() {
  try {
    const run = await api("GET", `/runs/${state.runId}`);
    $("stored-json").textContent = JSON.stringify(run, null, 2);
  } catch (error) {
    $("stored-json").textContent = error.message;
  }
  $("stored-box").hidden = false;
}

// -- wiring ----------------------------------------------------------------------------------

// Ctrl+Enter (Cmd+Enter on a Mac) submits the form being typed in: runs, from the question.
function onKeydown(event) {
  const form = event.target.form;
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && form) {
    event.preventDefault();
    form.requestSubmit();
  }
}

function init() {
  const on = (id, type, handler) => $(id).addEventListener(type, handler);
  on("key-form", "submit", onKeySubmit);
  on("key-cancel", "click", onKeyCancel);
  on("key-forget", "click", onKeyForget);
  on("key-button", "click", () => askForKey("Change the key this tab sends").catch(() => {}));
  on("thread-form", "submit", onNewThread);
  on("document-form", "submit", onAddDocument);
  on("ask-form", "submit", onRun);
  on("stop", "click", onStop);
  on("thumb-up", "click", () => setScore(state.score === 1 ? null : 1));
  on("thumb-down", "click", () => setScore(state.score === -1 ? null : -1));
  on("feedback-form", "submit", onFeedback);
  on("show-stored", "click", onShowStored);
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", onModeChange);
  }
  document.addEventListener("keydown", onKeydown);
  onModeChange();
  refreshAll();
}

init();
