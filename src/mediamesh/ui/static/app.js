// mediamesh UI: the few things a server-rendered page cannot do alone. No framework, no build step.
// Changes go through the JSON API with the session cookie and this page's CSRF token.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

/** Call the API; resolves to {ok, status, data}, with data.error.message on failure. */
async function api(method, url, body) {
  const init = { method, headers: { "X-CSRF-Token": csrf, Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    return { ok: false, status: 0, data: { error: { message: "The server cannot be reached: " + err.message } } };
  }
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = { error: { message: `The server answered ${response.status}` } };
  }
  if (response.status === 401) {
    location.href = "/sign-in?next=" + encodeURIComponent(location.pathname + location.search);
  }
  return { ok: response.ok, status: response.status, data };
}

function messageOf(result) {
  return result.data?.error?.message || `The server answered ${result.status}`;
}

function flash(text, ok = false) {
  const box = document.getElementById("flash");
  if (!box) return;
  box.textContent = text;
  box.classList.toggle("ok", ok);
}

function busy(button, on) {
  if (!button) return;
  button.setAttribute("aria-busy", on ? "true" : "false");
  button.disabled = on;
}

// -- live regions: [data-poll] is refreshed from its URL (see startLive) ---------------------------------
const pollers = [];

async function refresh(el) {
  if (el.dataset.polling === "1") return;
  el.dataset.polling = "1";
  try {
    const response = await fetch(el.dataset.poll, { credentials: "same-origin" });
    if (signedOut(response)) return;
    if (!response.ok) return;
    const html = await response.text();
    // Keep keyboard focus on the same control across the swap.
    const focused = document.activeElement && el.contains(document.activeElement) ? focusKey(document.activeElement) : null;
    el.innerHTML = html;
    if (focused) el.querySelector(focused)?.focus();
  } catch (_) {
    // The server is restarting or the network dropped: the next tick tries again.
  } finally {
    el.dataset.polling = "0";
  }
}

/** A fragment asked for after the session ended is answered by the sign-in page: go there instead. */
function signedOut(response) {
  if (response.status === 401 || (response.redirected && new URL(response.url).pathname === "/sign-in")) {
    location.href = "/sign-in?next=" + encodeURIComponent(location.pathname + location.search);
    return true;
  }
  return false;
}

function focusKey(node) {
  if (node.id) return "#" + CSS.escape(node.id);
  if (node.dataset.api) return `[data-api="${CSS.escape(node.dataset.api)}"]`;
  return null;
}

/**
 * Live regions follow the server's event stream (/api/v1/events): any change (a file added, a scan
 * started or finished, a source going offline) refreshes them at once. While something runs (a region
 * holds [data-busy]: a scan, enrichment) its progress is read every [data-poll-ms] as well; otherwise
 * every thirty of those (every five without a stream: a proxy that buffers it).
 */
function startLive() {
  const regions = [...document.querySelectorAll("[data-poll]")];
  if (!regions.length) return;
  let queued = null;
  let again = null;
  const soon = () => {
    if (!queued) {
      queued = setTimeout(() => { queued = null; if (!document.hidden) regions.forEach(refresh); }, 250);
    }
    // Counts the server makes in the background (media per source) follow a change within 10 s: look
    // once more after the changes stop.
    clearTimeout(again);
    again = setTimeout(() => { if (!document.hidden) regions.forEach(refresh); }, 11000);
  };
  let streaming = false;
  if ("EventSource" in window) {
    const stream = new EventSource("/api/v1/events");
    stream.onopen = () => { streaming = true; };
    stream.onmessage = soon;
    stream.addEventListener("gap", soon);
    stream.onerror = () => { streaming = false; }; // it reconnects by itself, with Last-Event-ID
    window.addEventListener("pagehide", () => stream.close());
  }
  regions.forEach((el) => {
    const every = Number(el.dataset.pollMs || 3000);
    let ticks = 0;
    pollers.push(setInterval(() => {
      ticks += 1;
      if (document.hidden) return;
      if (el.querySelector("[data-busy]") || ticks % (streaming ? 30 : 5) === 0) refresh(el);
    }, every));
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) regions.forEach(refresh);
  });
}

// -- buttons that call the API: data-api="METHOD /url", data-body (JSON), data-confirm,
//    data-then=reload|refresh|go:/path ------------------------------------------------------------------
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-api]");
  if (!button) return;
  event.preventDefault();
  if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
  const [method, url] = button.dataset.api.split(" ");
  busy(button, true);
  const result = await api(method, url, button.dataset.body ? JSON.parse(button.dataset.body) : undefined);
  busy(button, false);
  if (!result.ok) {
    flash(messageOf(result));
    return;
  }
  const then = button.dataset.then || "reload";
  if (then === "refresh") {
    if (method === "POST" && url.endsWith("/scans")) flash(`Scan of ${result.data.source || "the source"} ${result.data.status || "started"}.`, true);
    document.querySelectorAll("[data-poll]").forEach(refresh);
  } else if (then.startsWith("go:")) {
    location.href = then.slice(3);
  } else {
    location.reload();
  }
});

// -- infinite scroll: the "More" link loads the next tiles when it comes into view ----------------------
function watchMore(root) {
  const link = root.querySelector("a.load-more[data-more]");
  if (!link || !("IntersectionObserver" in window)) return;
  const observer = new IntersectionObserver(async (entries) => {
    if (!entries.some((e) => e.isIntersecting)) return;
    observer.disconnect();
    const item = link.closest("li");
    const response = await fetch(link.dataset.more, { credentials: "same-origin" });
    if (signedOut(response) || !response.ok) return;
    const template = document.createElement("template");
    template.innerHTML = await response.text();
    const list = item.parentElement;
    item.replaceWith(template.content);
    watchMore(list);
  }, { rootMargin: "600px" });
  observer.observe(link);
}

// -- forms ----------------------------------------------------------------------------------------------
function lines(text) {
  return text.split("\n").map((s) => s.trim()).filter(Boolean);
}

function showFieldError(form, id, text) {
  const el = form.querySelector("#" + id);
  if (!el) return false;
  el.textContent = text;
  el.hidden = !text;
  return true;
}

/** The source form: a location from the fields per kind, Test connection, then save. */
function sourceForm(form) {
  const kind = form.dataset.kind;
  const editing = form.dataset.edit;
  const value = (name) => (form.elements[name]?.value || "").trim();
  const result = form.querySelector("#location-error");

  // The kind's fields, as the server described them (data-option); the server makes the location.
  const options = [...form.querySelectorAll("[data-option]:not([data-secret])")];
  const secrets = [...form.querySelectorAll("[data-secret]")];
  const secret = secrets[0];
  // Every secret field given goes by its own name (password, private_key); an empty one keeps what is stored.
  function withSecrets(body) {
    let given = false;
    for (const input of secrets) if (input.value) { body[input.name] = input.value; given = true; }
    return given;
  }
  function whereTo() {
    const fields = {};
    for (const input of options) fields[input.name] = input.value.trim();
    return { kind, fields };
  }

  function clearErrors() {
    form.querySelectorAll(".field-error").forEach((el) => { el.textContent = ""; el.hidden = true; });
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    result.textContent = "";
    result.className = "test-result";
  }

  function missing() {
    const empty = [...form.querySelectorAll("[data-required]")].filter((input) => !input.value.trim());
    empty.forEach((input) => input.setAttribute("aria-invalid", "true"));
    if (empty.length) {
      const labels = empty.map((input) => form.querySelector(`label[for="${input.id}"]`)?.textContent.trim() || input.name);
      result.textContent = `Fill in: ${labels.join(", ")}.`;
      result.className = "test-result bad";
      empty[0].focus();
    }
    return empty.length > 0;
  }

  function locationError(text) {
    result.textContent = text;
    result.className = "test-result bad";
    // Mark the field the message is about: a secret for a refused log-on, else the field it names, else
    // the first one.
    let input = options[0];
    if (/private key/i.test(text)) input = secrets.find((i) => i.name === "private_key") || secret;
    else if (/host key|fingerprint/i.test(text)) input = options.find((o) => o.name === "fingerprint") || input;
    else if (secret && /password|user name|logon|log on|credential|access denied/i.test(text)) input = secret;
    else input = options.find((o) => new RegExp(`\\b${o.name}\\b`, "i").test(text)) || input;
    input?.setAttribute("aria-invalid", "true");
  }

  function place(text) {
    // An API message, put next to the field it is about.
    const lower = text.toLowerCase();
    if (/source name|a source named|name/.test(lower) && !/location|share|host/.test(lower)) {
      form.elements.name.setAttribute("aria-invalid", "true");
      showFieldError(form, "name-error", text);
      form.elements.name.focus();
    } else if (lower.includes("schedule") || lower.includes("cron") || lower.includes("interval")) {
      form.elements.schedule.setAttribute("aria-invalid", "true");
      form.querySelector("details").open = true;
      showFieldError(form, "schedule-error", text);
    } else if (lower.includes("glob") || lower.includes("include") || lower.includes("exclude")) {
      form.querySelector("details").open = true;
      showFieldError(form, "filters-error", text);
    } else if (lower.includes("priority")) {
      showFieldError(form, "form-error", text);
    } else {
      locationError(text);
    }
  }

  form.querySelector("#test-connection").addEventListener("click", async (event) => {
    clearErrors();
    if (missing()) return;
    const button = event.currentTarget;
    busy(button, true);
    result.textContent = "Connecting…";
    const body = whereTo();
    if (!withSecrets(body) && editing) body.source = editing;
    const answer = await api("POST", "/api/v1/sources/test", body);
    busy(button, false);
    if (!answer.ok) return place(messageOf(answer));
    const t = answer.data;
    if (t.reachable) {
      const parts = [`Connected to ${t.location}`];
      if (t.latency_ms != null) parts.push(`${Math.round(t.latency_ms)} ms`);
      if (t.capacity_bytes) parts.push(`${formatSize(t.free_bytes)} free of ${formatSize(t.capacity_bytes)}`);
      result.textContent = "✓ " + parts.join(" · ");
      // A host key to be trusted on first use: shown, for the user to compare with the server's.
      const pinned = form.elements.fingerprint?.value.trim();
      if (t.identity?.host_key && !pinned) {
        result.textContent += ` · host key ${t.identity.host_key} (trusted when you save; compare with 'ssh-keygen -lf' on the server)`;
      }
      result.className = "test-result ok";
    } else {
      locationError("✗ " + (t.error || "cannot be reached"));
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    if (!editing && !value("name")) {
      form.elements.name.setAttribute("aria-invalid", "true");
      showFieldError(form, "name-error", "A source needs a name.");
      form.elements.name.focus();
      return;
    }
    if (missing()) return;
    const body = {
      ...whereTo(),
      include: lines(form.elements.include.value),
      exclude: lines(form.elements.exclude.value),
      schedule: value("schedule") || (editing ? "" : null),
      priority: Number(value("priority") || 0),
      watch: value("watch") || "auto",
    };
    withSecrets(body);
    if (!editing) body.name = value("name");
    const button = form.querySelector('button[type="submit"]');
    busy(button, true);
    const answer = editing
      ? await api("PATCH", `/api/v1/sources/${encodeURIComponent(editing)}`, body)
      : await api("POST", "/api/v1/sources", body);
    if (!answer.ok) {
      busy(button, false);
      return place(messageOf(answer));
    }
    // A new source is scanned at once unless the box was unticked; the dashboard follows the scan.
    if (!editing && form.elements.scan_now?.checked) {
      await api("POST", `/api/v1/sources/${encodeURIComponent(answer.data.name)}/scans`, {});
    }
    busy(button, false);
    location.href = "/";
  });
}

function formatSize(bytes) {
  if (bytes == null) return "–";
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let n = bytes, i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return i ? `${n.toFixed(1)} ${units[i]}` : `${n} B`;
}

/** A rule (or template) form: what it would match, counted live while typing; then save. */
function ruleForm(form) {
  const previewBox = form.querySelector(".preview");
  const errorBox = form.querySelector(".field-error");
  const isTemplate = form.id === "template-form";
  let timer = null;
  let asked = 0;

  function rule() {
    const spec = {};
    const path = form.elements.path.value.trim();
    if (path) spec.path = path;
    const sources = [...form.elements.sources.selectedOptions].map((o) => o.value);
    if (sources.length) spec.sources = sources;
    const kinds = [...form.querySelectorAll('input[name="kinds"]:checked')].map((i) => i.value);
    if (kinds.length) spec.kinds = kinds;
    const extensions = (form.elements.extensions?.value || "").split(/[\s,]+/).map((e) => e.replace(/^\./, "")).filter(Boolean);
    if (extensions.length) spec.extensions = extensions;
    for (const name of ["modified_after", "modified_before"]) {
      const value = form.elements[name]?.value;
      if (value) spec[name] = value;
    }
    return spec;
  }

  async function preview() {
    const spec = rule();
    if (!Object.keys(spec).length || (isTemplate && !spec.path)) {
      previewBox.textContent = isTemplate ? "Type a path with {project} to see what it would make." : "";
      return;
    }
    const mine = ++asked;
    const answer = await api("POST", form.dataset.preview, spec);
    if (mine !== asked) return; // a newer question is on its way
    if (!answer.ok) {
      previewBox.textContent = messageOf(answer);
      return;
    }
    const p = answer.data;
    if (isTemplate) {
      const names = p.projects.slice(0, 8).map((x) => `${x.name} (${x.media})`).join(", ");
      previewBox.textContent = `Would make ${p.project_count} project${p.project_count === 1 ? "" : "s"} with ${p.media} media` +
        (names ? `: ${names}${p.project_count > 8 ? ", …" : ""}` : "");
    } else {
      previewBox.textContent = `Matches ${p.media} media (${p.files} location${p.files === 1 ? "" : "s"})` +
        (p.examples.length ? `, such as ${p.examples.slice(0, 3).join(", ")}` : "");
    }
  }

  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(preview, 250);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const spec = rule();
    const button = form.querySelector('button[type="submit"]');
    let answer;
    busy(button, true);
    if (isTemplate) {
      answer = await api("POST", form.dataset.save, spec);
    } else if (form.dataset.project) {
      const rules = JSON.parse(document.getElementById("rules").dataset.rules).map(stripId);
      answer = await api("PATCH", `/api/v1/projects/${encodeURIComponent(form.dataset.project)}`, { rules: [...rules, spec] });
    } else {
      const body = { name: form.elements.name.value.trim(), description: form.elements.description.value, rules: Object.keys(spec).length ? [spec] : [] };
      answer = await api("POST", form.dataset.save, body);
      if (answer.ok) {
        location.href = `/projects/${encodeURIComponent(answer.data.name)}`;
        return;
      }
    }
    busy(button, false);
    if (!answer.ok) {
      errorBox.textContent = messageOf(answer);
      errorBox.hidden = false;
      return;
    }
    location.reload();
  });
}

function stripId(rule) {
  const copy = { ...rule };
  delete copy.id;
  return copy;
}

function rulesList() {
  const list = document.getElementById("rules");
  if (!list) return;
  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-remove-rule]");
    if (!button) return;
    if (!confirm("Remove this rule? Media it alone put in the project leave it.")) return;
    const form = document.getElementById("rule-form");
    const rules = JSON.parse(list.dataset.rules).map(stripId);
    rules.splice(Number(button.dataset.removeRule), 1);
    busy(button, true);
    const answer = await api("PATCH", `/api/v1/projects/${encodeURIComponent(form.dataset.project)}`, { rules });
    if (!answer.ok) {
      busy(button, false);
      return flash(messageOf(answer));
    }
    location.reload();
  });
}

function webhookForm(form) {
  const errorBox = document.getElementById("webhook-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const name = form.elements.name.value.trim();
    const url = form.elements.url.value.trim();
    if (!name || !url) {
      errorBox.textContent = "A webhook needs a name and a URL.";
      errorBox.hidden = false;
      (name ? form.elements.url : form.elements.name).focus();
      return;
    }
    const events = form.elements.events.value ? [form.elements.events.value] : [];
    const answer = await api("POST", "/api/v1/webhooks", { name, url, events });
    if (!answer.ok) {
      errorBox.textContent = messageOf(answer);
      errorBox.hidden = false;
      return;
    }
    document.getElementById("new-secret-value").textContent = answer.data.secret;
    document.getElementById("new-secret").hidden = false;
    form.reset();
    // The list is refreshed in place, so the secret stays on screen until the page is left.
    const page = await fetch(location.href, { credentials: "same-origin" });
    if (page.ok) {
      const doc = new DOMParser().parseFromString(await page.text(), "text/html");
      const fresh = doc.querySelector("ul.webhooks");
      if (fresh) document.querySelector("ul.webhooks").replaceWith(fresh);
    }
  });
}

function tokenForm(form) {
  const errorBox = document.getElementById("token-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const name = form.elements.name.value.trim();
    if (!name) {
      errorBox.textContent = "A token needs a name.";
      errorBox.hidden = false;
      form.elements.name.setAttribute("aria-invalid", "true");
      form.elements.name.focus();
      return;
    }
    const chosen = (field) => Array.from(form.elements[field]?.selectedOptions || [], (o) => o.value);
    const answer = await api("POST", "/api/v1/tokens", {
      name,
      scope: form.elements.scope.value,
      sources: chosen("sources"),
      projects: chosen("projects"),
    });
    if (!answer.ok) {
      errorBox.textContent = messageOf(answer);
      errorBox.hidden = false;
      return;
    }
    const box = document.getElementById("new-token");
    document.getElementById("new-token-value").textContent = answer.data.token;
    box.hidden = false;
    form.reset();
    document.getElementById("copy-token").focus();
    // The list is refreshed in place, so the value stays on screen until the page is left.
    const page = await fetch(location.href, { credentials: "same-origin" });
    if (page.ok) {
      const doc = new DOMParser().parseFromString(await page.text(), "text/html");
      const fresh = doc.querySelector("table.tokens tbody");
      if (fresh) document.querySelector("table.tokens tbody").replaceWith(fresh);
    }
  });
  document.getElementById("copy-token").addEventListener("click", async () => {
    const value = document.getElementById("new-token-value").textContent;
    try {
      await navigator.clipboard.writeText(value);
      flash("Copied.", true);
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents(document.getElementById("new-token-value"));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
    }
  });
}

function addToProject(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const project = form.elements.project.value;
    const answer = await api("POST", `/api/v1/projects/${encodeURIComponent(project)}/media`, { media_id: form.dataset.media });
    if (!answer.ok) return flash(messageOf(answer));
    location.reload();
  });
}

/** "Found on your network": hosts that announced themselves (or the one asked), each offer a link that
 * opens this form with its fields filled in. Names come from the network: shown as text, never as HTML. */
function discoveryPanel(panel) {
  const list = document.getElementById("discovered");
  const status = document.getElementById("discovery-status");
  const hostForm = document.getElementById("discovery-host");

  function offerItem(offer) {
    const li = document.createElement("li");
    const params = new URLSearchParams({ kind: offer.kind, ...offer.fields });
    const link = document.createElement("a");
    link.href = "/sources/new?" + params.toString();
    link.textContent = `${offer.kind.toUpperCase()} ${offer.name}`;
    li.append(link);
    if (offer.comment) li.append(" ", Object.assign(document.createElement("span"), { className: "muted", textContent: offer.comment }));
    if (offer.registered) {
      li.append(" ", Object.assign(document.createElement("span"), { className: "badge online", textContent: `added as ${offer.registered}` }));
    }
    return li;
  }

  function show(data) {
    list.replaceChildren();
    for (const host of data.hosts) {
      const item = document.createElement("li");
      const title = document.createElement("strong");
      title.textContent = host.names.length ? host.names.join(", ") : host.address;
      item.append(title, " ", Object.assign(document.createElement("span"), {
        className: "muted",
        textContent: [host.names.length ? host.address : "", host.model || ""].filter(Boolean).join(" · "),
      }));
      const offers = document.createElement("ul");
      for (const offer of host.offers) offers.append(offerItem(offer));
      if (!host.offers.length) {
        offers.append(Object.assign(document.createElement("li"), {
          className: "muted",
          textContent: host.errors.length ? host.errors.join("; ") : "No shares listed to a guest: add it by hand with a user and password.",
        }));
      }
      item.append(offers);
      list.append(item);
    }
    status.textContent = [
      data.hosts.length
        ? "Pick a share: the form below is filled in; then Test connection."
        : data.hint || "That host listed nothing to a guest.",
      ...(data.problems || []),
    ].join(" ");
  }

  async function look(host, fresh = false) {
    panel.setAttribute("aria-busy", "true");
    status.textContent = host ? `Asking ${host}…` : "Listening for NAS and computers that announce themselves…";
    const params = new URLSearchParams(host ? { host } : {});
    if (fresh) params.set("fresh", "true");
    const query = params.toString() ? "?" + params.toString() : "";
    const answer = await api("GET", "/api/v1/discovery" + query);
    panel.setAttribute("aria-busy", "false");
    if (!answer.ok) {
      list.replaceChildren();
      status.textContent = messageOf(answer);
      return;
    }
    show(answer.data);
  }

  hostForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const host = hostForm.elements.host.value.trim();
    if (host) look(host);
  });
  document.getElementById("discovery-again").addEventListener("click", () => look(null, true));
  look(null);
}

document.addEventListener("DOMContentLoaded", () => {
  // Filters folded away on a phone are laid open on a wide screen.
  if (matchMedia("(min-width: 721px)").matches) document.querySelectorAll("details[data-open-wide]").forEach((d) => { d.open = true; });
  startLive();
  watchMore(document);
  const source = document.getElementById("source-form");
  if (source) sourceForm(source);
  const discovery = document.getElementById("discovery");
  if (discovery) discoveryPanel(discovery);
  document.querySelectorAll("form.rule-form").forEach(ruleForm);
  rulesList();
  const tokens = document.getElementById("token-form");
  if (tokens) tokenForm(tokens);
  const hooks = document.getElementById("webhook-form");
  if (hooks) webhookForm(hooks);
  const add = document.getElementById("add-to-project");
  if (add) addToProject(add);
});
