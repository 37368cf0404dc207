// The sandbox page: a mini-program played in a phone frame against the real /api/v1, the user's
// phone messages and a bot console. wx.* calls the real mini-program makes are played here by the
// sandbox's own endpoints (/sandbox/api/…): wx.login → a login code the fake WeChat knows,
// wx.requestPayment → the fake WeChat Pay paying and notifying /pay/notify, and
// wx.requestSubscribeMessage → every asked template accepted.
"use strict";

const API = "/api/v1";
const SANDBOX = "/sandbox/api";

const TEXT = {
  zh: {
    title: "沙箱：不用微信，走一遍业主的一个月", users: "微信用户", users_hint: "选一个演示用户，在手机里打开小程序。",
    staff_desk: "运维台", staff_desk_hint: "业主要先绑定：运维给业主发邀请码（与机器人的“邀请”命令相同）。",
    inbox: "手机消息", inbox_hint: "订阅消息、公众号模板消息、客服消息和机器人回复。", console: "公众号机器人",
    as_user: "以此用户发送", send: "发送", app: "光伏结算", login: "微信一键登录", login_hint: "以 {name} 的微信登录小程序",
    bind_title: "绑定业主账户", bind_hint: "输入运维给您的邀请码", bind: "绑定", invite: "发邀请码",
    invitation_for: "{owner} 的邀请码：", bound: "已绑定", plants: "电站", forms: "确认单", bills: "账单",
    live_power: "实时功率", today: "今日发电", lifetime: "累计发电", updated: "更新于 {time}",
    day: "日", month: "月", year: "年", energy_kwh: "发电量 (kWh)", back: "‹ 返回", no_items: "暂无",
    period: "账期", version: "版本 v{v}", generation: "发电量", self_use: "自用电量", export: "上网电量",
    grid: "下网电量", confirm: "确认无误", dispute: "提出异议", dispute_reason: "异议原因（必填）",
    total: "合计", owed: "待付", paid: "已付", due_on: "到期日", pay: "微信支付 {amount}",
    paying: "支付中…", logout: "退出",
    superseded: "已被新版本取代", overdue: "已逾期",
    kind_subscribe: "订阅消息", kind_template: "模板消息", kind_custom: "客服消息", kind_bot: "机器人",
    photos: "照片（最多 6 张，JPEG/PNG）", photos_attached: "{n} 张照片",
    staff: "运维", owner_user: "待绑定的业主", reply_later: "（稍后以客服消息回复）", register: "表",
    rate: "时段", item: "项目", unit_price: "单价(元/kWh)", amount: "金额",
    discount: "电价折扣", discount_value: "电网电价 × {factor}", credit_applied: "余额抵扣",
    ebill: "电子账单（可打印）", eform: "电子确认单（可打印）",
    adjustments: "运维调整记录", adjusted: "v{v} {field}：{before} → {after}，{by}，{at}，原因：{reason}",
  },
  en: {
    title: "Sandbox: an owner's month without WeChat", users: "WeChat users", users_hint: "Pick a demo user and open the mini-program on the phone.",
    staff_desk: "Staff desk", staff_desk_hint: "Owners bind first: staff give them an invitation code (the bot's 邀请 command does the same).",
    inbox: "Phone messages", inbox_hint: "Subscribe messages, official-account template and customer-service messages, bot replies.",
    console: "Official-account bot", as_user: "Send as", send: "Send", app: "PV settlement", login: "Log in with WeChat",
    login_hint: "Log in to the mini-program as {name}", bind_title: "Bind your owner account",
    bind_hint: "Enter the invitation code staff gave you", bind: "Bind", invite: "Invite",
    invitation_for: "Invitation code for {owner}: ", bound: "bound", plants: "Plants", forms: "Forms", bills: "Bills",
    live_power: "Live power", today: "Today", lifetime: "Lifetime", updated: "updated {time}",
    day: "Day", month: "Month", year: "Year", energy_kwh: "Energy (kWh)", back: "‹ Back", no_items: "Nothing yet",
    period: "Period", version: "version v{v}", generation: "Generation", self_use: "Self-use", export: "Export",
    grid: "Grid import", confirm: "Confirm", dispute: "Dispute", dispute_reason: "Why do you dispute it? (required)",
    total: "Total", owed: "Owed", paid: "Paid", due_on: "Due on", pay: "Pay {amount} with WeChat Pay",
    paying: "Paying…", logout: "Log out",
    superseded: "superseded by a newer version", overdue: "overdue", kind_subscribe: "subscribe message",
    kind_template: "template message", kind_custom: "customer-service message", kind_bot: "bot", staff: "staff",
    photos: "Photos (up to 6, JPEG/PNG)", photos_attached: "{n} photo(s)", owner_user: "would-be owner",
    reply_later: "(answered later by customer-service message)", register: "register",
    rate: "Period", item: "Item", unit_price: "Price (¥/kWh)", amount: "Amount",
    discount: "Discount", discount_value: "grid price × {factor}", credit_applied: "Account credit applied",
    ebill: "Printable e-bill", eform: "Printable form",
    adjustments: "Adjusted by O&M staff", adjusted: "v{v} {field}: {before} → {after}, by {by}, {at}, reason: {reason}",
  },
};

const state = {
  lang: localStorage.getItem("sandbox-lang") || "zh",
  users: [], templates: {}, user: null, sessions: {}, view: { name: "plants" },
  live: null, chart: null, seenMessages: 0, invitation: null,
  catalogue: {}, // language → the server's message catalogue (GET /api/v1/i18n), id → text
};

function t(key, vars) {
  let text = (TEXT[state.lang] || TEXT.zh)[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) text = text.replace(`{${k}}`, v);
  return text;
}

// The words for the codes the API returns (form_state.adjusted, rate.peak, template.bill_issued.amount3,
// …) come from the server's one catalogue, as the mini-program's would; the code itself shows
// only if the catalogue lacks it, which the browser test catches.
async function loadCatalogue(lang) {
  if (!state.catalogue[lang]) state.catalogue[lang] = (await call("GET", `${API}/i18n?lang=${lang}`)).messages;
}

function label(id, fallback) {
  return (state.catalogue[state.lang] || {})[id] ?? fallback ?? id.split(".").pop();
}

// a message of the catalogue with its {placeholders} filled: what a toast says (sandbox.*), so
// every notice the page shows has its Chinese and English in the one catalogue (tests/unit/test_i18n.py)
function say(id, vars) {
  let text = label(id);
  for (const [k, v] of Object.entries(vars || {})) text = text.replace(`{${k}}`, v);
  return text;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (k === "class") node.className = v;
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// replaceChildren would print a null child as "null": views leave out what does not apply with null
const show = (parent, ...children) => parent.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));

// numbers and times follow the UI's language (not the browser's), times in the plants' zone
const locale = () => (state.lang === "zh" ? "zh-CN" : "en-GB");
const TIME_ZONE = "Asia/Shanghai";
function num(value, digits) {
  if (value === null || value === undefined || value === "") return "—";
  return new Intl.NumberFormat(locale(), { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(Number(value));
}
const kw = (w) => (w === null || w === undefined ? "—" : num(w / 1000, 1));
const kwh = (value) => num(value, 3);
// integer fen: whole yuan grouped by Intl, the fen appended, so no float rounding touches money
function yuan(fen) {
  const whole = Math.trunc(Math.abs(fen) / 100);
  const cents = String(Math.abs(fen) % 100).padStart(2, "0");
  // both zh-CN and en-GB write the decimal point as "."
  return `${fen < 0 ? "-" : ""}¥${new Intl.NumberFormat(locale()).format(whole)}.${cents}`;
}
const when = (iso) => iso ? new Date(iso).toLocaleString(locale(), { hour12: false, timeZone: TIME_ZONE }) : "—";
const clockTime = (date) => date.toLocaleTimeString(locale(), { hour12: false, timeZone: TIME_ZONE });
// an e-bill or e-form link in the UI's language
// what an adjustment changed, in words: the API gives its field as a code (generation.peak, a
// reading as "<meter> <register> <boundary>")
function adjustedValue(a, value) {
  if (value === null || value === undefined) return "—";
  return a.kind === "energy" ? kwh(value) : value;
}

function adjustedItem(a) {
  if (a.kind === "energy") {
    const [what, rate] = a.field.split(".");
    return `${label(`ebill.${what}`)} ${label(`rate.${rate}`)}`;
  }
  if (a.field === "readings") return label("ebill.adjusted_readings");
  const [meter, register, boundary] = a.field.split(" ");
  return `${meter} ${register} ${label(`ebill.boundary_${boundary}`, "")}`.trim();
}

const inLanguage = (url) => `${url}${url.includes("?") ? "&" : "?"}lang=${state.lang}`;

function toast(text) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 2500);
}

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function call(method, url, body, token, form) {
  const headers = { "Accept-Language": state.lang };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined && !form) headers["Content-Type"] = "application/json";
  const response = await fetch(url, { method, headers, body: form ? body : body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || String(response.status), error.message || response.statusText);
  }
  return data;
}

const sandbox = (method, path, body) => call(method, SANDBOX + path, body);
const session = () => state.sessions[state.user?.key];

async function api(method, path, body, form) {
  try {
    return await call(method, API + path, body, session()?.token, form);
  } catch (error) {
    if (error.status === 401 && state.user) { delete state.sessions[state.user.key]; render(); }
    throw error;
  }
}

// wx.requestSubscribeMessage: the sandbox's user accepts every template asked for
async function subscribe(names) {
  const answers = {};
  for (const name of names) if (state.templates[name]) answers[state.templates[name]] = "accept";
  await api("PUT", "/subscriptions", answers);
  toast(say("sandbox.subscribed", { names: names.map((name) => label(`template.${name}._title`, name)).join(label("sandbox.list_separator")) }));
}

// --- the people panel ----------------------------------------------------------------------------

async function loadUsers() {
  const data = await sandbox("GET", "/users");
  state.users = data.users;
  state.templates = data.templates;
  const list = document.getElementById("user-list");
  const botUser = document.getElementById("bot-user");
  const keep = botUser.value;
  list.replaceChildren();
  botUser.replaceChildren();
  for (const user of state.users) {
    const role = user.role ? `${t("staff")} · ${label(`role.${user.role}`)}` : user.owner ? `${t("bound")} · ${user.owner.name}` : t("owner_user");
    list.append(el("li", {}, el("label", {},
      el("input", { type: "radio", name: "user", value: user.key, "data-testid": `user-${user.key}`,
                    checked: state.user?.key === user.key, on: { change: () => pickUser(user.key) } }),
      el("span", {}, user.nickname), el("span", { class: "role" }, role))));
    botUser.append(el("option", { value: user.key }, `${user.nickname}${user.role ? ` (${label(`role.${user.role}`)})` : ""}`));
  }
  botUser.value = keep || state.users.find((u) => u.role === "operator")?.key || state.users[0]?.key;
}

async function loadOwners() {
  const { owners } = await sandbox("GET", "/owners");
  const list = document.getElementById("owner-list");
  list.replaceChildren(...owners.map((owner) => el("li", {},
    el("span", {}, owner.name, el("br"), el("span", { class: "plants" }, owner.plants.map((p) => p.code).join(" · "))),
    el("button", { type: "button", "data-testid": `invite-${owner.plants[0]?.code || owner.id}`,
                   on: { click: () => invite(owner) } }, t("invite")))));
}

async function invite(owner) {
  const { invitation_code: code } = await sandbox("POST", "/invitation", { owner_id: owner.id });
  state.invitation = { owner: owner.name, code };
  showInvitation();
}

function showInvitation() {
  if (!state.invitation) return;
  const { owner, code } = state.invitation;
  document.getElementById("invitation").replaceChildren(el("span", { class: "muted" }, t("invitation_for", { owner })),
                                                        el("br"), el("span", { "data-testid": "invitation-code" }, code));
}

function pickUser(key) {
  state.user = state.users.find((u) => u.key === key);
  state.view = { name: "plants" };
  state.seenMessages = 0;
  document.getElementById("phone-user").textContent = state.user.nickname;
  render();
  refreshInbox();
}

// --- the phone's messages ------------------------------------------------------------------------

// a subscribe message's fields (thing2, amount3 …) and a template message's (first, keywordN, remark)
// under the labels their template has in WeChat's console: template.<name>.<key> in the catalogue
function fieldLabel(m, key) {
  if (m.kind === "template" && /^keyword\d+$/.test(key)) return label(`template.${m.template}.oa.${key}`);
  return label(`template.${m.template}.${key}`);
}

function messageText(m) {
  if (m.kind === "bot") return `> ${m.text}\n${m.reply ?? t("reply_later")}`;
  if (m.kind === "custom") return m.text;
  const fields = Object.entries(m.data || {}).map(([k, v]) => {
    if (m.kind === "template" && (k === "first" || k === "remark")) return v; // free text, no label
    return `${fieldLabel(m, k)}${state.lang === "zh" ? "：" : ": "}${v}`;
  }).join("\n");
  const title = label(`template.${m.template}._title`, m.template || m.template_id);
  return `${title}\n${fields}`;
}

async function refreshInbox() {
  if (!state.user) return;
  const { messages } = await sandbox("GET", `/phone?user=${encodeURIComponent(state.user.key)}`);
  const list = document.getElementById("inbox");
  list.replaceChildren(...messages.map((m) => el("li", { class: m.kind, "data-testid": "message", "data-kind": m.kind,
                                                        "data-template": m.template || "" },
    el("div", { class: "kind" }, `${t("kind_" + m.kind)} · ${clockTime(new Date(m.at * 1000))}`),
    messageText(m))));
  if (messages.length > state.seenMessages) list.scrollTop = list.scrollHeight;
  state.seenMessages = messages.length;
}

// --- the bot console -----------------------------------------------------------------------------

async function sendToBot(event) {
  event.preventDefault();
  const input = document.getElementById("bot-input");
  const who = document.getElementById("bot-user").value;
  const out = document.getElementById("bot-reply");
  out.textContent = "…";
  try {
    const answer = await sandbox("POST", "/bot", { user: who, text: input.value });
    out.textContent = answer.reply ?? t("reply_later");
    input.value = "";
  } catch (error) {
    out.textContent = error.message;
    out.dataset.code = error.code;
  }
  refreshInbox();
}

// --- the mini-program ----------------------------------------------------------------------------

function stopLive() {
  if (state.live) { state.live.abort(); state.live = null; }
  if (state.chart) { state.chart.destroy(); state.chart = null; }
}

function go(view) {
  state.view = view;
  render();
}

async function render() {
  stopLive();
  const screen = document.getElementById("mp");
  document.getElementById("mp-title").textContent = t("app");
  if (!state.user) { show(screen, el("p", { class: "muted" }, t("users_hint"))); return; }
  try {
    if (!session()) return renderLogin(screen);
    if (!session().me.bound) return renderBind(screen);
    const views = { plants: renderPlants, plant: renderPlant, forms: renderForms, form: renderForm,
                    bills: renderBills, bill: renderBill };
    await views[state.view.name](screen);
  } catch (error) {
    show(screen, el("div", { class: "card", "data-testid": "error", "data-code": error.code || "" }, error.message));
  }
}

function renderLogin(screen) {
  show(screen, el("div", { class: "card" },
    el("p", {}, t("login_hint", { name: state.user.nickname })),
    el("button", { class: "primary", type: "button", "data-testid": "login", on: { click: login } }, t("login"))));
}

async function login() {
  const { code } = await sandbox("POST", "/login", { user: state.user.key }); // wx.login
  const opened = await call("POST", `${API}/session`, { code });
  state.sessions[state.user.key] = opened;
  render();
}

function renderBind(screen) {
  const input = el("input", { "data-testid": "bind-code", autocomplete: "off", placeholder: "ABCD 2345 67" });
  const error = el("p", { class: "muted", "data-testid": "bind-error" });
  show(screen, el("div", { class: "card" }, el("h3", {}, t("bind_title")), el("p", { class: "muted" }, t("bind_hint")),
    input, el("div", { class: "row" }, el("button", { class: "primary", type: "button", "data-testid": "bind", on: { click: async () => {
      try {
        const bound = await api("POST", "/binding", { invitation_code: input.value });
        session().me = { ...session().me, bound: true, owner: bound.owner };
        await loadUsers();
        render();
      } catch (e) { error.textContent = e.message; error.dataset.code = e.code; }
    } } }, t("bind"))), error));
}

function tabs(active) {
  return el("div", { class: "tabs" }, ["plants", "forms", "bills"].map((name) => el("button", {
    type: "button", class: active === name ? "on" : "", "data-testid": `tab-${name}`, on: { click: () => go({ name }) },
  }, t(name))));
}

async function renderPlants(screen) {
  const { items } = await api("GET", "/plants");
  show(screen, tabs("plants"), ...items.map((p) => el("div", {
    class: "card link", "data-testid": `plant-${p.code}`, on: { click: () => go({ name: "plant", id: p.id }) } },
    el("h3", {}, p.name),
    el("div", { class: "muted" }, `${p.code} · ${num(p.capacity_kwp, 1)} kWp · `,
       el("span", { "data-testid": "plant-status", "data-status": p.status }, label(`plant_status.${p.status}`))),
    el("div", {}, `${t("live_power")}: ${kw(p.power_w)} kW · ${t("today")}: ${kwh(p.today_kwh)} kWh`))),
  items.length ? null : el("p", { class: "muted" }, t("no_items")));
}

async function renderPlant(screen) {
  const plant = await api("GET", `/plants/${state.view.id}`);
  // shown in kW; the exact watts stay on the element (data-w) for whoever reads it closely
  const power = el("span", { class: "big", "data-testid": "live-power", "data-w": plant.power_w ?? "" }, kw(plant.power_w));
  const today = el("span", { "data-testid": "live-today" }, kwh(plant.today_kwh));
  const seen = el("div", { class: "muted", "data-testid": "live-ts" }, t("updated", { time: when(plant.last_seen) }));
  const canvas = el("canvas", { "data-testid": "chart" });
  const spans = el("div", { class: "tabs" }, ["day", "month", "year"].map((span) => el("button", {
    type: "button", "data-testid": `span-${span}`, on: { click: () => drawHistory(plant.id, span, canvas, spans) } }, t(span))));
  show(screen, tabs("plants"),
    el("button", { class: "back", type: "button", on: { click: () => go({ name: "plants" }) } }, t("back")),
    el("div", { class: "card" }, el("h3", {}, plant.name), el("div", { class: "muted" }, `${plant.code} · ${plant.address}`),
      el("div", {}, t("live_power"), el("br"), power, " kW"),
      el("div", {}, `${t("today")}: `, today, " kWh · ", `${t("lifetime")}: `,
         el("span", { "data-testid": "lifetime" }, kwh(plant.lifetime_kwh)), " kWh"), seen),
    el("div", { class: "card" }, spans, el("div", { class: "chart-box" }, canvas)));
  drawHistory(plant.id, "day", canvas, spans);
  followLive(plant.id, power, today, seen);
}

// /plants/{id}/live is Server-Sent Events behind the session header: read with fetch, since
// EventSource cannot send Authorization (wx.request with enableChunked does the same)
async function followLive(plantId, power, today, seen) {
  const controller = new AbortController();
  state.live = controller;
  try {
    const response = await fetch(`${API}/plants/${plantId}/live`, {
      headers: { Authorization: `Bearer ${session().token}` }, signal: controller.signal });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const lines = block.split("\n");
        if (!lines.includes("event: state")) continue;
        const live = JSON.parse(lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n"));
        power.textContent = kw(live.power_w);
        power.dataset.w = String(live.power_w);
        today.textContent = kwh(live.today_kwh);
        seen.textContent = t("updated", { time: when(live.ts) });
      }
    }
  } catch (error) {
    if (error.name !== "AbortError") seen.textContent = `${error.message}`;
  }
}

async function drawHistory(plantId, span, canvas, spans) {
  for (const button of spans.children) button.classList.toggle("on", button.dataset.testid === `span-${span}`);
  const history = await api("GET", `/plants/${plantId}/history?span=${span}`);
  if (state.chart) state.chart.destroy();
  state.chart = new Chart(canvas, {
    type: "bar",
    data: { labels: history.bars.map((b) => b.label),
            datasets: [{ label: t("energy_kwh"), data: history.bars.map((b) => b.energy_kwh === null ? null : Number(b.energy_kwh)),
                         // a month taken from its confirmed form, not measured by telemetry, is drawn paler
                         backgroundColor: history.bars.map((b) => (b.source === "form" ? "#9fdfbf" : "#07c160")) }] },
    options: { animation: false, maintainAspectRatio: false, locale: locale(), plugins: { legend: { display: false } },
               scales: { y: { beginAtZero: true, title: { display: true, text: "kWh" },
                              ticks: { callback: (value) => new Intl.NumberFormat(locale()).format(value) } } } },
  });
  canvas.dataset.span = span;
  canvas.dataset.yUnit = state.chart.options.scales.y.title.text;
  canvas.dataset.bars = String(history.bars.length);
  canvas.dataset.measured = String(history.bars.filter((b) => b.energy_kwh !== null && Number(b.energy_kwh) > 0).length);
}

const stateLabel = (section, value) => el("span", { class: `state ${value}`, "data-testid": "state", "data-state": value },
                                          label(`${section}.${value}`));

async function renderForms(screen) {
  const { items } = await api("GET", "/forms");
  show(screen, tabs("forms"), ...items.map((f) => el("div", {
    class: "card link", "data-testid": `form-${f.plant_code}-v${f.version}`, on: { click: () => go({ name: "form", id: f.id }) } },
    el("h3", {}, `${f.plant_code} · ${f.period}`), stateLabel("form_state", f.state), " ",
    el("span", { class: "muted" }, `${t("version", { v: f.version })} · ${t("generation")} ${kwh(f.generation_kwh)} kWh`))),
  items.length ? null : el("p", { class: "muted" }, t("no_items")));
}

async function renderForm(screen) {
  const form = await api("GET", `/forms/${state.view.id}`);
  const reason = el("textarea", { rows: 2, "data-testid": "dispute-reason", placeholder: t("dispute_reason") });
  const photos = el("input", { type: "file", accept: "image/jpeg,image/png", multiple: true, "data-testid": "dispute-photos" });
  const actions = form.can_answer ? el("div", {},
    el("div", { class: "row" },
      el("button", { class: "primary", type: "button", "data-testid": "form-confirm", on: { click: async () => {
        await subscribe(["bill_issued"]);
        await api("POST", `/forms/${form.id}/confirm`);
        render();
      } } }, t("confirm"))),
    el("div", { class: "row" }, reason),
    el("div", { class: "row" }, el("label", { class: "muted" }, t("photos"), photos)),
    el("div", { class: "row" }, el("button", { class: "warn", type: "button", "data-testid": "form-dispute", on: { click: async () => {
      await subscribe(["form_sent"]);
      const body = new FormData();
      body.append("reason", reason.value);
      for (const photo of photos.files) body.append("photos", photo, photo.name);
      try { await api("POST", `/forms/${form.id}/dispute`, body, true); render(); }
      catch (e) { toast(e.message); }
    } } }, t("dispute")))) : null;
  const periods = Object.entries(form.periods).map(([name, p]) => el("tr", {},
    el("td", { "data-rate": name }, label(`rate.${name}`)), el("td", { class: "num" }, kwh(p.generation)),
    el("td", { class: "num" }, kwh(p.self_use)), el("td", { class: "num" }, kwh(p.export)), el("td", { class: "num" }, kwh(p.grid))));
  show(screen, tabs("forms"),
    el("button", { class: "back", type: "button", on: { click: () => go({ name: "forms" }) } }, t("back")),
    el("div", { class: "card", "data-testid": "form" },
      el("h3", {}, `${form.plant_name}`), el("div", { class: "muted" }, `${t("period")} ${form.period} · `,
        el("span", { "data-testid": "form-version" }, t("version", { v: form.version }))),
      el("div", {}, stateLabel("form_state", form.state), form.superseded ? el("span", { class: "muted" }, ` ${t("superseded")}`) : null),
      form.dispute_reason ? el("p", { class: "muted" }, form.dispute_reason,
        form.attachments.length ? ` · ${t("photos_attached", { n: form.attachments.length })}` : "") : null,
      el("div", { class: "table-scroll" }, el("table", {}, el("tr", {}, el("th", {}, t("rate")), el("th", { class: "num" }, t("generation")),
                                 el("th", { class: "num" }, t("self_use")), el("th", { class: "num" }, t("export")), el("th", { class: "num" }, t("grid"))),
        periods,
        el("tr", {}, el("th", {}, t("total")), el("th", { class: "num" }, kwh(form.generation_kwh)), el("th", { class: "num" }, kwh(form.self_use_kwh)),
           el("th", { class: "num" }, kwh(form.export_kwh)), el("th", { class: "num" }, kwh(form.grid_kwh))))),
      form.adjustments.length ? el("div", { class: "warn", "data-testid": "form-adjustments" },
        el("strong", {}, t("adjustments")), ...form.adjustments.map((a) => el("div", {}, t("adjusted", {
          // energies are kWh figures, grouped like every other; readings are shown as the meter reads
          v: a.version, field: adjustedItem(a), before: adjustedValue(a, a.before), after: adjustedValue(a, a.after), by: a.by,
          at: when(a.at), reason: a.reason })))) : null,
      el("p", {}, el("a", { href: inLanguage(form.ebill_url), target: "_blank", rel: "noopener", "data-testid": "form-ebill" }, t("eform")))),
    actions);
}

async function renderBills(screen) {
  const { items } = await api("GET", "/bills");
  show(screen, tabs("bills"), ...items.map((b) => el("div", {
    class: "card link", "data-testid": `bill-${b.plant_code}`, on: { click: () => go({ name: "bill", id: b.id }) } },
    el("h3", {}, `${b.plant_code} · ${b.period}`), stateLabel("bill_state", b.state), " ",
    el("span", { class: "muted" }, `${t("total")} ${yuan(b.total_fen)} · ${t("owed")} ${yuan(b.owed_fen)}`))),
  items.length ? null : el("p", { class: "muted" }, t("no_items")));
}

async function renderBill(screen) {
  const bill = await api("GET", `/bills/${state.view.id}`);
  const pay = bill.owed_fen > 0 ? el("button", { class: "primary", type: "button", "data-testid": "bill-pay", on: { click: async (event) => {
    event.target.disabled = true;
    event.target.textContent = t("paying");
    try {
      const order = await api("POST", `/bills/${bill.id}/pay`, {});
      await subscribe(["payment_received"]);
      // wx.requestPayment: WeChat Pay takes the money and notifies the server on its own
      await sandbox("POST", "/pay", { user: state.user.key, out_trade_no: order.out_trade_no, request_payment: order.request_payment });
      toast(say("sandbox.paid"));
      render();
    } catch (e) { toast(e.message); render(); }
  } } }, t("pay", { amount: yuan(bill.owed_fen) })) : null;
  show(screen, tabs("bills"),
    el("button", { class: "back", type: "button", on: { click: () => go({ name: "bills" }) } }, t("back")),
    el("div", { class: "card", "data-testid": "bill" },
      el("h3", {}, bill.plant_name), el("div", { class: "muted" }, `${bill.number} · ${t("due_on")} ${bill.due_on}`),
      el("div", {}, stateLabel("bill_state", bill.state)),
      bill.discount ? el("div", { class: "muted", "data-testid": "bill-discount" },
        `${t("discount")}: ${t("discount_value", { factor: num(bill.discount, 2) })}`) : null,
      el("div", { class: "table-scroll" }, el("table", {},
        el("tr", {}, el("th", {}, t("item")), el("th", { class: "num" }, "kWh"),
           el("th", { class: "num" }, t("unit_price")), el("th", { class: "num" }, t("amount"))),
        bill.lines.map((line) => el("tr", { "data-testid": "bill-line" }, el("td", {}, line.description),
          el("td", { class: "num" }, line.kwh ? kwh(line.kwh) : ""),
          el("td", { class: "num", "data-testid": "bill-unit-price" }, line.unit_price ? num(line.unit_price, 4) : ""),
          el("td", { class: "num" }, yuan(line.amount_fen)))),
        el("tr", {}, el("th", { colspan: 3 }, t("total")), el("th", { class: "num" }, yuan(bill.total_fen))),
        bill.credit_applied_fen ? el("tr", {}, el("th", { colspan: 3 }, t("credit_applied")),
                                     el("th", { class: "num" }, yuan(bill.credit_applied_fen))) : null,
        el("tr", {}, el("th", { colspan: 3 }, t("paid")), el("th", { class: "num", "data-testid": "bill-paid" }, yuan(bill.paid_fen))),
        el("tr", {}, el("th", { colspan: 3 }, t("owed")), el("th", { class: "num", "data-testid": "bill-owed" }, yuan(bill.owed_fen))))),
      el("p", {}, el("a", { href: inLanguage(bill.ebill_url), target: "_blank", rel: "noopener", "data-testid": "bill-ebill" }, t("ebill")))),
    pay);
}

// --- start ---------------------------------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.getElementById("lang").textContent = state.lang === "zh" ? "English" : "中文";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  showInvitation();
}

async function start() {
  await loadCatalogue(state.lang);
  applyLanguage();
  document.getElementById("lang").addEventListener("click", async () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("sandbox-lang", state.lang);
    await loadCatalogue(state.lang);
    applyLanguage();
    await Promise.all([loadUsers(), loadOwners()]);
    render();
    refreshInbox();
  });
  document.getElementById("console").addEventListener("submit", sendToBot);
  await Promise.all([loadUsers(), loadOwners()]);
  render();
  setInterval(() => refreshInbox().catch(() => {}), 2000);
  setInterval(() => { document.getElementById("clock").textContent = clockTime(new Date()); }, 1000);
}

start();
