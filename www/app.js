// The edgegram playground: chat with the local demo bot as Telegram would, and watch what it
// persists. Plain JS, no build step.
//
// - Messages and button presses become Telegram updates, sent to POST /webhook.
// - The bot's Bot API calls are recorded by the worker (DEV_RECORD_BOT_API=1) and read from
//   GET /admin/dev/calls?after=<seq>; they are applied as Telegram clients show them.
// - The state pane is GET /admin/export, refreshed after every update.
// - Chat history, users and groups live in localStorage; the bot's data lives in the worker.

const STORE_KEY = "edgegram-playground-v1";
const MAX_MESSAGES = 500;
const SECTIONS = ["bot_data", "chat_data", "user_data", "conversations", "callback_data"];

const $ = (selector) => document.querySelector(selector);

// ---------------------------------------------------------------------------------------------
// Saved state

function defaults() {
  return {
    users: [{ id: 1001, first_name: "Ann" }],
    groups: [],
    current: { user: 1001, chat: "private" },
    chats: {},
    nextUpdateId: 1,
    lastSeq: null,
    adminToken: "dev-admin",
    pane: "chat",
  };
}

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE_KEY));
    if (saved && Array.isArray(saved.users)) return { ...defaults(), ...saved };
  } catch {}
  return defaults();
}

const s = load();
const hashToken = /(?:^#|&)admin=([^&]+)/.exec(location.hash);
if (hashToken) {
  s.adminToken = decodeURIComponent(hashToken[1]);
  history.replaceState(null, "", location.pathname);
}

function save() {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(s));
  } catch (e) {
    showBanner(`Chat history could not be saved in this browser: ${e.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Users, chats, Telegram objects

const BOT = { id: 1, is_bot: true, first_name: "edgegram demo", username: "edgegram_demo_bot" };

function currentUser() {
  return s.users.find((u) => u.id === s.current.user) ?? s.users[0];
}

function currentChatId() {
  return s.current.chat === "private" ? currentUser().id : Number(s.current.chat);
}

function group(id) {
  return s.groups.find((g) => g.id === id);
}

function chatObject(chatId) {
  if (chatId > 0) {
    const user = s.users.find((u) => u.id === chatId);
    return { id: chatId, type: "private", first_name: user?.first_name ?? `User ${chatId}` };
  }
  const g = group(chatId);
  return { id: chatId, type: chatId <= -1000000000000 ? "supergroup" : "group", title: g?.title ?? `Chat ${chatId}` };
}

function userObject(user) {
  return { id: user.id, is_bot: false, first_name: user.first_name, language_code: "en" };
}

function chatState(chatId) {
  const key = String(chatId);
  s.chats[key] ??= { messages: [], keyboard: null };
  return s.chats[key];
}

function nextUpdateId() {
  // Increasing across reloads and cleared histories: the worker remembers processed ids.
  const id = Math.max(s.nextUpdateId, Date.now());
  s.nextUpdateId = id + 1;
  return id;
}

/** `bot_command` entities, as Telegram marks them: `/name` or `/name@bot` at a word start. */
function commandEntities(text) {
  const entities = [];
  const re = /(^|\s)(\/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?)(?=\s|$)/g;
  let match;
  while ((match = re.exec(text))) {
    entities.push({ type: "bot_command", offset: match.index + match[1].length, length: match[2].length });
  }
  return entities;
}

// ---------------------------------------------------------------------------------------------
// Talking to the worker

function adminHeaders() {
  return { Authorization: `Bearer ${s.adminToken}` };
}

async function adminFetch(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { ...adminHeaders(), ...(init.headers ?? {}) } });
  if (res.status === 401) {
    showBanner("The worker refused the admin token: set it in ⚙ (npm run dev uses dev-admin).");
  }
  return res;
}

let queue = Promise.resolve();
let pending = 0;
/** Runs `task` after the ones before it: updates reach the bot one at a time, in order.
 * `body[data-pending]` is set while tasks wait or run (tests wait for it to go). */
function enqueue(task) {
  pending += 1;
  document.body.dataset.pending = String(pending);
  queue = queue
    .then(task)
    .catch((e) => {
      console.error(e);
      showBanner(String(e.message ?? e));
    })
    .finally(() => {
      pending -= 1;
      if (pending === 0) delete document.body.dataset.pending;
      else document.body.dataset.pending = String(pending);
    });
  return queue;
}

let recorderOff = false;

async function allocateMessageId(chatId) {
  if (!recorderOff) {
    const res = await adminFetch(`/admin/dev/message-id?chat=${chatId}`, { method: "POST" });
    if (res.ok) return (await res.json()).message_id;
  }
  const messages = chatState(chatId).messages;
  return messages.reduce((max, m) => Math.max(max, m.id ?? 0), 0) + 1;
}

async function sendUpdate(update) {
  let summary;
  try {
    const res = await fetch("/webhook", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(update),
    });
    const body = await res.text();
    summary = `update ${update.update_id}: ${res.status} ${res.headers.get("x-edgegram-outcome") ?? body}`;
    if (!res.ok) systemMessage(currentChatId(), `The webhook answered ${res.status}: ${body}`);
  } catch (e) {
    summary = `update ${update.update_id}: not delivered`;
    systemMessage(currentChatId(), `The worker cannot be reached (${e.message}). Is npm run dev running?`);
  }
  await pollCalls();
  await refreshState(summary);
}

function sendText(text) {
  text = text.trim();
  if (!text) return Promise.resolve();
  return enqueue(async () => {
    const user = currentUser();
    const chatId = currentChatId();
    const message_id = await allocateMessageId(chatId);
    const message = {
      message_id,
      date: Math.floor(Date.now() / 1000),
      chat: chatObject(chatId),
      from: userObject(user),
      text,
    };
    const entities = commandEntities(text);
    if (entities.length) message.entities = entities;
    const chat = chatState(chatId);
    chat.messages.push({ id: message_id, from: userObject(user), text, date: message.date });
    trim(chat);
    save();
    renderMessages();
    await sendUpdate({ update_id: nextUpdateId(), message });
  });
}

let queryCounter = 0;
function pressInline(chatId, messageId, button) {
  if (button.url) {
    window.open(button.url, "_blank", "noopener");
    return Promise.resolve();
  }
  if (button.callback_data === undefined) return Promise.resolve();
  return enqueue(async () => {
    const chat = chatState(chatId);
    const shown = chat.messages.find((m) => m.id === messageId && m.from?.is_bot);
    if (!shown) return;
    const user = currentUser();
    const message = {
      message_id: messageId,
      date: shown.date,
      chat: chatObject(chatId),
      from: shown.from,
      text: shown.text,
    };
    if (shown.inline) message.reply_markup = { inline_keyboard: shown.inline };
    const update = {
      update_id: nextUpdateId(),
      callback_query: {
        id: `${Date.now()}${++queryCounter}`,
        from: userObject(user),
        chat_instance: `playground${chatId}`,
        message,
        data: button.callback_data,
      },
    };
    await sendUpdate(update);
  });
}

async function pollCalls() {
  if (recorderOff) return;
  for (let round = 0; round < 20; round++) {
    const res = await adminFetch(`/admin/dev/calls?after=${s.lastSeq ?? 0}`);
    if (res.status === 404) {
      recorderOff = true;
      showBanner("The worker sends its Bot API calls to a real Bot API (DEV_RECORD_BOT_API is not set), so the bot's replies cannot be shown here. npm run dev without BOT_TOKEN records them.");
      return;
    }
    if (!res.ok) return;
    const { calls, last } = await res.json();
    if (s.lastSeq === null) {
      // A new browser: start from now, not from calls of earlier sessions.
      s.lastSeq = last;
      save();
      return;
    }
    if (last < s.lastSeq) {
      // The worker's log was wiped (a new STATE_DIR): start over.
      s.lastSeq = 0;
      continue;
    }
    for (const call of calls) {
      applyCall(call);
      s.lastSeq = call.seq;
    }
    save();
    renderMessages();
    renderCalls(calls);
    if (calls.length < 1000) return;
  }
}

// ---------------------------------------------------------------------------------------------
// Applying the bot's calls as Telegram shows them

function knowChat(chatId) {
  if (chatId > 0 && !s.users.some((u) => u.id === chatId)) {
    s.users.push({ id: chatId, first_name: `User ${chatId}` });
    renderPickers();
  }
  if (chatId < 0 && !group(chatId)) {
    s.groups.push({ id: chatId, title: `Chat ${chatId}`, members: [] });
    renderPickers();
  }
}

function applyMarkup(chat, markup) {
  if (!markup) return;
  if (markup.remove_keyboard) chat.keyboard = null;
  if (Array.isArray(markup.keyboard)) {
    chat.keyboard = { rows: markup.keyboard, oneTime: !!markup.one_time_keyboard, hidden: false };
  }
}

function applyCall(call) {
  const p = call.params ?? {};
  const chatId = Number(p.chat_id);
  const known = Number.isSafeInteger(chatId) && chatId !== 0;
  if (!call.ok) {
    if (known) systemMessage(chatId, `${call.method} failed: ${call.description}`, false);
    return;
  }
  switch (call.method) {
    case "answerCallbackQuery":
      if (p.text) toast(p.text, p.show_alert ? 5000 : 2500);
      return;
    case "editMessageText":
    case "editMessageCaption":
    case "editMessageReplyMarkup": {
      if (!known) return;
      const chat = chatState(chatId);
      const message = chat.messages.find((m) => m.id === p.message_id && m.from?.is_bot);
      if (!message) return;
      if (call.method !== "editMessageReplyMarkup") {
        message.text = p.text ?? p.caption ?? message.text;
        message.edited = true;
      }
      message.inline = p.reply_markup?.inline_keyboard ?? null;
      return;
    }
    case "deleteMessage": {
      if (!known) return;
      const chat = chatState(chatId);
      chat.messages = chat.messages.filter((m) => m.id !== p.message_id);
      return;
    }
    default:
      break;
  }
  const result = call.result;
  if (!known || !result || typeof result !== "object" || result.message_id === undefined) return;
  knowChat(chatId);
  const chat = chatState(chatId);
  const text = p.text ?? p.caption ?? `[${call.method.replace(/^send/, "").toLowerCase() || call.method}]`;
  chat.messages.push({
    id: result.message_id,
    from: result.from ?? BOT,
    text,
    date: result.date,
    inline: p.reply_markup?.inline_keyboard ?? null,
  });
  applyMarkup(chat, p.reply_markup);
  trim(chat);
}

function systemMessage(chatId, text, render = true) {
  const chat = chatState(chatId);
  chat.messages.push({ system: true, text, date: Math.floor(Date.now() / 1000) });
  trim(chat);
  save();
  if (render) renderMessages();
}

function trim(chat) {
  if (chat.messages.length > MAX_MESSAGES) chat.messages.splice(0, chat.messages.length - MAX_MESSAGES);
}

// ---------------------------------------------------------------------------------------------
// Rendering

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function time(date) {
  if (!date) return "";
  return new Date(date * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function renderPickers() {
  const userSelect = $("#user-select");
  userSelect.replaceChildren(
    ...s.users.map((u) => el("option", { value: String(u.id) }, `${u.first_name} (${u.id})`)),
  );
  userSelect.value = String(currentUser().id);
  const chatSelect = $("#chat-select");
  const groups = s.groups.filter((g) => g.members.length === 0 || g.members.includes(currentUser().id));
  chatSelect.replaceChildren(
    el("option", { value: "private" }, "Private chat with the bot"),
    ...groups.map((g) => el("option", { value: String(g.id) }, g.title)),
  );
  if (s.current.chat !== "private" && !groups.some((g) => String(g.id) === String(s.current.chat))) {
    s.current.chat = "private";
  }
  chatSelect.value = String(s.current.chat);
  $("#member-list").replaceChildren(
    ...s.users.map((u) =>
      el("label", { class: "member" }, el("input", { type: "checkbox", name: "member", value: String(u.id), ...(u.id === currentUser().id ? { checked: "" } : {}) }), ` ${u.first_name}`),
    ),
  );
}

function renderMessages() {
  const chatId = currentChatId();
  const chat = chatState(chatId);
  const me = currentUser().id;
  const isGroup = chatId < 0;
  const title = isGroup
    ? `${group(chatId)?.title ?? `Chat ${chatId}`} · ${chatId}`
    : `Private chat of ${currentUser().first_name} with @${BOT.username} · ${chatId}`;
  $("#chat-title").textContent = title;
  const list = $("#messages");
  const nodes = chat.messages.map((m) => {
    if (m.system) return el("div", { class: "msg system" }, m.text);
    const mine = !m.from?.is_bot && m.from?.id === me;
    const who = m.from?.is_bot ? "bot" : mine ? "me" : "other";
    const showName = isGroup && !mine;
    const bubble = el(
      "div",
      { class: `msg ${who}`, dataset: { messageId: String(m.id) } },
      showName ? el("div", { class: "name" }, m.from?.first_name ?? "") : null,
      el("div", { class: "text" }, m.text),
      el("div", { class: "when" }, `${m.edited ? "edited " : ""}${time(m.date)}`),
    );
    if (Array.isArray(m.inline) && m.inline.length) {
      const keyboard = el("div", { class: "inline-keyboard" });
      for (const row of m.inline) {
        const rowNode = el("div", { class: "row" });
        for (const button of row) {
          rowNode.append(
            el("button", { type: "button", class: "inline-button", onclick: () => pressInline(chatId, m.id, button) }, button.text),
          );
        }
        keyboard.append(rowNode);
      }
      bubble.append(keyboard);
    }
    return bubble;
  });
  if (nodes.length === 0) {
    nodes.push(el("div", { class: "msg system" }, "No messages yet. Try /start, /count or /list."));
  }
  list.replaceChildren(...nodes);
  list.scrollTop = list.scrollHeight;
  renderKeyboard(chat);
}

function renderKeyboard(chat) {
  const pane = $("#reply-keyboard");
  const toggle = $("#keyboard-toggle");
  const keyboard = chat.keyboard;
  toggle.hidden = !keyboard;
  toggle.setAttribute("aria-pressed", keyboard && !keyboard.hidden ? "true" : "false");
  if (!keyboard || keyboard.hidden) {
    pane.hidden = true;
    pane.replaceChildren();
    return;
  }
  pane.hidden = false;
  pane.replaceChildren(
    ...keyboard.rows.map((row) =>
      el(
        "div",
        { class: "row" },
        ...row.map((button) => {
          const text = typeof button === "string" ? button : button.text;
          return el("button", {
            type: "button",
            class: "reply-button",
            onclick: () => {
              if (keyboard.oneTime) keyboard.hidden = true;
              save();
              renderKeyboard(chat);
              sendText(text);
            },
          }, text);
        }),
      ),
    ),
  );
}

let lastState = null;
async function refreshState(summary) {
  let res;
  try {
    res = await adminFetch("/admin/export");
  } catch (e) {
    $("#state-meta").textContent = `the worker cannot be reached: ${e.message}`;
    return;
  }
  if (!res.ok) {
    $("#state-meta").textContent = `/admin/export answered ${res.status}: ${await res.text()}`;
    return;
  }
  const doc = await res.json();
  for (const section of SECTIONS) {
    const node = document.querySelector(`#state details[data-section="${section}"]`);
    const text = JSON.stringify(doc[section] ?? null, null, 2);
    const pre = node.querySelector("pre");
    if (lastState && lastState[section] !== text) {
      node.classList.remove("changed");
      void node.offsetWidth; // restart the highlight
      node.classList.add("changed");
    }
    pre.textContent = text;
    node.querySelector("summary").textContent = `${section}${summarize(section, doc[section])}`;
  }
  lastState = Object.fromEntries(SECTIONS.map((k) => [k, JSON.stringify(doc[k] ?? null, null, 2)]));
  const now = new Date().toLocaleTimeString();
  $("#state-meta").textContent = summary ? `${summary} · read at ${now}` : `read at ${now}`;
}

function summarize(section, value) {
  if (value == null) return " (none)";
  if (section === "callback_data") return ` (${value[0]?.length ?? 0} keyboards)`;
  if (section === "bot_data") return "";
  if (section === "conversations") {
    const n = Object.values(value).reduce((sum, states) => sum + Object.keys(states ?? {}).length, 0);
    return ` (${n})`;
  }
  return ` (${Object.keys(value).length})`;
}

const recentCalls = [];
function renderCalls(calls) {
  recentCalls.push(...calls);
  recentCalls.splice(0, Math.max(0, recentCalls.length - 20));
  $("#calls").replaceChildren(
    ...recentCalls.map((c) =>
      el("li", {}, el("code", {}, `#${c.seq} ${c.method}${c.ok ? "" : " (failed)"}`), " ", JSON.stringify(c.params)),
    ),
  );
}

async function loadInfo() {
  try {
    const res = await adminFetch("/admin/info");
    if (!res.ok) {
      $("#backend").textContent = `backend: unknown (/admin/info answered ${res.status})`;
      return;
    }
    const info = await res.json();
    if (info.bot_username) BOT.username = info.bot_username;
    const routing = info.do_routing ? ` · DO_ROUTING=${info.do_routing}` : "";
    const api = info.dev_record_bot_api ? "Bot API recorded in the worker" : "real Bot API";
    $("#backend").textContent = `backend: ${info.persistence}${routing} · ${api}`;
    $("#backend").dataset.persistence = info.persistence;
  } catch (e) {
    $("#backend").textContent = `backend: unknown (${e.message})`;
  }
}

let toastTimer;
function toast(text, ms = 2500) {
  const node = $("#toast");
  node.textContent = text;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (node.hidden = true), ms);
}

function showBanner(text) {
  const node = $("#banner");
  node.textContent = text;
  node.hidden = false;
}

function showPane(pane) {
  s.pane = pane;
  document.body.dataset.pane = pane;
  for (const tab of document.querySelectorAll(".tab")) {
    tab.setAttribute("aria-pressed", tab.dataset.tab === pane ? "true" : "false");
  }
  save();
}

// ---------------------------------------------------------------------------------------------
// Wiring

function toggleForm(button, form) {
  const open = form.hidden;
  form.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
  if (open) form.querySelector("input")?.focus();
}

$("#composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("#text");
  const text = input.value;
  input.value = "";
  sendText(text);
});

for (const chip of document.querySelectorAll(".chip")) {
  chip.addEventListener("click", () => sendText(chip.dataset.command));
}

$("#keyboard-toggle").addEventListener("click", () => {
  const chat = chatState(currentChatId());
  if (!chat.keyboard) return;
  chat.keyboard.hidden = !chat.keyboard.hidden;
  save();
  renderKeyboard(chat);
});

$("#user-select").addEventListener("change", (event) => {
  s.current.user = Number(event.target.value);
  save();
  renderPickers();
  renderMessages();
});

$("#chat-select").addEventListener("change", (event) => {
  s.current.chat = event.target.value === "private" ? "private" : Number(event.target.value);
  save();
  renderMessages();
});

$("#new-user-toggle").addEventListener("click", (e) => toggleForm(e.currentTarget, $("#new-user-form")));
$("#new-group-toggle").addEventListener("click", (e) => {
  const form = $("#new-group-form");
  if (form.hidden) form.elements.id.value = String(-1001500000000 - 1 - s.groups.length);
  toggleForm(e.currentTarget, form);
});

$("#new-user-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const id = Number(form.elements.id.value);
  const name = form.elements.name.value.trim();
  if (!Number.isSafeInteger(id) || id <= 0 || !name) return;
  const existing = s.users.find((u) => u.id === id);
  if (existing) existing.first_name = name;
  else s.users.push({ id, first_name: name });
  s.current.user = id;
  form.reset();
  toggleForm($("#new-user-toggle"), form);
  save();
  renderPickers();
  renderMessages();
});

$("#new-group-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const id = Number(form.elements.id.value);
  const title = form.elements.title.value.trim();
  if (!Number.isSafeInteger(id) || id >= 0 || !title) return;
  const members = [...form.querySelectorAll("input[name=member]:checked")].map((i) => Number(i.value));
  if (!members.includes(currentUser().id)) members.push(currentUser().id);
  const existing = group(id);
  if (existing) Object.assign(existing, { title, members });
  else s.groups.push({ id, title, members });
  s.current.chat = id;
  toggleForm($("#new-group-toggle"), form);
  save();
  renderPickers();
  renderMessages();
});

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => showPane(tab.dataset.tab));
}

$("#settings-toggle").addEventListener("click", (e) => {
  const panel = $("#settings");
  panel.hidden = !panel.hidden;
  e.currentTarget.setAttribute("aria-expanded", String(!panel.hidden));
});

$("#admin-token").addEventListener("change", (event) => {
  s.adminToken = event.target.value.trim();
  save();
  $("#banner").hidden = true;
  recorderOff = false;
  loadInfo();
  enqueue(async () => {
    await pollCalls();
    await refreshState();
  });
});

$("#clear-history").addEventListener("click", () => {
  s.chats = {};
  save();
  renderMessages();
});

$("#reset-state").addEventListener("click", () => {
  if (!confirm("Replace everything the worker stores with an empty state?")) return;
  enqueue(async () => {
    const res = await adminFetch("/admin/import", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    if (!res.ok) showBanner(`/admin/import answered ${res.status}: ${await res.text()}`);
    await refreshState("state reset");
  });
});

$("#refresh").addEventListener("click", () =>
  enqueue(async () => {
    await pollCalls();
    await refreshState();
  }),
);

// What the bot sends with no message of ours (a reminder, a conversation's timeout) shows up by
// itself: a quiet poll every 2 seconds while the page is visible and nothing else is queued.
setInterval(() => {
  if (pending > 0 || document.hidden || recorderOff || document.body.dataset.ready !== "1") return;
  queue = queue.then(pollCalls).catch((e) => console.error(e));
}, 2000);

// Keep the newest message in view when the window (or the keyboard below it) changes size.
new ResizeObserver(() => {
  const list = $("#messages");
  list.scrollTop = list.scrollHeight;
}).observe($("#messages"));

$("#admin-token").value = s.adminToken;
showPane(s.pane ?? "chat");
renderPickers();
renderMessages();
loadInfo();
enqueue(async () => {
  await pollCalls();
  await refreshState();
  document.body.dataset.ready = "1";
});
