// salon organizer console: vanilla JS, no build step. Every piece of data is put in the page
// with textContent / createElement (never innerHTML), so submissions cannot inject markup.
"use strict";

const I18N = {
  en: {
    title: "Organizer console", offline: "offline", live: "live", tab_queue: "Queue", tab_sessions: "Sessions",
    tab_overview: "Overview", tab_audit: "Audit trail", logout: "Log out", login_title: "Log in with an organizer API key",
    login: "Log in", all_pairs: "all pairs", sector: "sector", region: "region", stage: "stage", all_status: "any status",
    st_proposed: "proposed", st_shortlisted: "shortlisted", st_rejected: "rejected", st_declined: "declined",
    sort_score: "best score", sort_new: "newest", apply: "Apply", reason: "reason (needed to reject)",
    shortlist: "Shortlist", reject: "Reject", not_relevant: "Not relevant", undo: "Undo", score: "Score", pair: "Pair",
    side_a: "Side A", side_b: "Side B", status: "Status", new_session: "New closed session", theme: "Theme",
    starts_at: "Date and time", duration: "Duration (min)", venue: "Venue", link: "Online link",
    capacity: "Seats (10–20)", min_funds: "At least … funds", min_govs: "At least … governments",
    featured: "Featured projects (2–3)", create: "Create", funnel: "Funnel", scores: "Score distribution",
    composition: "Sessions by role and sector", when: "When", who: "Who", action: "Action", proposal: "Proposal",
    change: "Change", reason_h: "Reason", only_organizers: "This console is for organizers only: your key belongs to a participant.",
    bad_key: "Unknown or revoked API key.", need_reason: "Give a reason to reject.", select_first: "Select proposals first.",
    decided: "Saved", plan: "Run planner", rematch: "allow re-meeting", publish: "Publish", invited: "Invited",
    alternates: "Alternates", remove: "Remove", promote: "Invite", objective: "objective", bound: "upper bound",
    gap: "gap", solved_in: "solved in", attended: "attended", no_show: "no-show", save_attendance: "Save attendance",
    followup: "Record follow-up", outcome: "Outcome", date: "Date", participant: "Participant", project: "Project",
    reasons: "Reasons", audit: "Audit trail", close: "Close", exports: "Exports", funnel_submissions: "submissions",
    funnel_proposals: "proposals", funnel_shortlisted: "shortlisted", funnel_invited: "invited",
    funnel_attended: "attended", funnel_outcomes: "outcomes", no_sessions: "No sessions yet.",
    status_draft: "draft", status_published: "published", status_cancelled: "cancelled", cancel: "Cancel session",
    role_fund: "fund", role_government: "government", role_enterprise: "enterprise", new_proposal: "New proposal",
    fix: "What to change", inv_invited: "invited", inv_accepted: "accepted", inv_alternate: "alternate",
    inv_attended: "attended", inv_no_show: "no-show", inv_declined: "declined",
  },
  zh: {
    title: "组织方控制台", offline: "未连接", live: "实时", tab_queue: "撮合队列", tab_sessions: "闭门会",
    tab_overview: "概览", tab_audit: "操作记录", logout: "退出", login_title: "使用组织方 API 密钥登录", login: "登录",
    all_pairs: "全部配对", sector: "行业", region: "地区", stage: "阶段", all_status: "全部状态", st_proposed: "待处理",
    st_shortlisted: "已入围", st_rejected: "已拒绝", st_declined: "已婉拒", sort_score: "按得分", sort_new: "按时间",
    apply: "筛选", reason: "理由（拒绝时必填）", shortlist: "入围", reject: "拒绝", not_relevant: "不相关", undo: "撤销",
    score: "得分", pair: "配对", side_a: "甲方", side_b: "乙方", status: "状态", new_session: "新建闭门会", theme: "主题",
    starts_at: "日期时间", duration: "时长（分钟）", venue: "地点", link: "线上链接", capacity: "席位（10–20）",
    min_funds: "基金至少", min_govs: "政府至少", featured: "重点推介项目（2–3 个）", create: "创建", funnel: "转化漏斗",
    scores: "得分分布", composition: "各场次角色与行业构成", when: "时间", who: "操作人", action: "操作",
    proposal: "提案", change: "变化", reason_h: "理由", only_organizers: "此控制台仅供组织方使用：您的密钥属于参与方。",
    bad_key: "API 密钥无效或已吊销。", need_reason: "拒绝需填写理由。", select_first: "请先选择提案。", decided: "已保存",
    plan: "运行规划器", rematch: "允许再次见面", publish: "发布", invited: "受邀", alternates: "候补", remove: "移除",
    promote: "邀请", objective: "目标值", bound: "上界", gap: "差距", solved_in: "求解用时", attended: "出席",
    no_show: "缺席", save_attendance: "保存出席", followup: "登记跟进成果", outcome: "成果", date: "日期",
    participant: "参与方", project: "项目", reasons: "匹配理由", audit: "操作记录", close: "关闭", exports: "导出",
    funnel_submissions: "提交", funnel_proposals: "提案", funnel_shortlisted: "入围", funnel_invited: "邀请",
    funnel_attended: "出席", funnel_outcomes: "成果", no_sessions: "暂无场次。", status_draft: "草稿",
    status_published: "已发布", status_cancelled: "已取消", cancel: "取消场次", role_fund: "基金",
    role_government: "政府", role_enterprise: "企业", new_proposal: "新提案", fix: "建议",
    inv_invited: "已邀请", inv_accepted: "已接受", inv_alternate: "候补", inv_attended: "已出席", inv_no_show: "缺席", inv_declined: "已婉拒",
  },
};
const OUTCOMES = ["introduction", "site_visit", "term_sheet", "investment_closed", "project_landed"];
const OUTCOME_ZH = { introduction: "引荐", site_visit: "实地考察", term_sheet: "投资意向书", investment_closed: "完成投资", project_landed: "项目落地" };
const ROLE_COLORS = { fund: "#2a9d8f", government: "#e76f51", enterprise: "#264653" };

const state = { lang: localStorage.getItem("salon.lang") || (navigator.language.startsWith("zh") ? "zh" : "en"),
  key: sessionStorage.getItem("salon.key") || "", tab: "queue", items: new Map(), selected: new Set(),
  source: null, pitches: [], sessions: [] };
const $ = (id) => document.getElementById(id);
const t = (key) => (I18N[state.lang] && I18N[state.lang][key]) || I18N.en[key] || key;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function applyLanguage() {
  document.documentElement.lang = state.lang;
  $("lang").textContent = state.lang === "zh" ? "EN" : "中文";
  document.querySelectorAll("[data-i18n]").forEach((node) => { node.textContent = t(node.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((node) => { node.placeholder = t(node.dataset.i18nPlaceholder); });
  setLive(state.live);
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.key}`, "Accept-Language": state.lang, ...(options.headers || {}) };
  if (options.body && typeof options.body !== "string") { headers["Content-Type"] = "application/json"; options.body = JSON.stringify(options.body); }
  const response = await fetch(path, { ...options, headers });
  const isJson = (response.headers.get("content-type") || "").includes("json");
  const body = isJson ? await response.json() : await response.text();
  if (!response.ok) {
    const error = new Error(errorText(body) || response.statusText);
    error.status = response.status; error.body = body; throw error;
  }
  return body;
}

function errorText(body) {
  if (!body || typeof body !== "object") return String(body || "");
  if (Array.isArray(body.errors)) return body.errors.map((e) => `${e.field}: ${e.message}`).join("\n");
  return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
}

// --- login -----------------------------------------------------------------------------------
async function login(key) {
  state.key = key;
  $("login-error").textContent = "";
  try {
    const me = await api("/v1/console/me");
    sessionStorage.setItem("salon.key", key);
    $("login").hidden = true; $("app").hidden = false; $("tabs").hidden = false; $("logout").hidden = false;
    $("app").dataset.owner = me.owner;
    await loadQueue();
    connectStream();
  } catch (error) {
    sessionStorage.removeItem("salon.key");
    state.key = "";
    $("login-error").textContent = error.status === 403 ? t("only_organizers") : error.status === 401 ? t("bad_key") : error.message;
  }
}

function logout() {
  sessionStorage.removeItem("salon.key");
  if (state.source) state.source.close();
  location.reload();
}

// --- live stream -----------------------------------------------------------------------------
function setLive(live) {
  state.live = !!live;
  $("live").className = `pill ${state.live ? "on" : "off"}`;
  $("live").textContent = t(state.live ? "live" : "offline");
}

async function connectStream() {
  if (state.source) state.source.close();
  try {
    const { token } = await api("/v1/console/stream-token", { method: "POST" });
    const source = new EventSource(`/v1/console/stream?token=${encodeURIComponent(token)}`);
    state.source = source;
    source.addEventListener("status", (event) => setLive(JSON.parse(event.data).live));
    source.addEventListener("proposal", (event) => onProposal(JSON.parse(event.data)));
    source.onerror = () => { setLive(false); source.close(); setTimeout(connectStream, 3000); };
  } catch (error) { setLive(false); setTimeout(connectStream, 5000); }
}

async function onProposal(event) {
  try {
    const item = await api(`/v1/console/queue/${encodeURIComponent(event.match_id)}`);
    if (!matchesFilters(item)) return;
    state.items.set(item.match_id, item);
    const existing = document.querySelector(`tr[data-match="${CSS.escape(item.match_id)}"]`);
    const row = queueRow(item);
    row.classList.add("fresh");
    if (existing) existing.replaceWith(row); else $("queue-body").prepend(row);
  } catch (error) { /* the next list load shows it */ }
}

function matchesFilters(item) {
  const f = filters();
  if (f.pair_kind && item.pair_kind !== f.pair_kind) return false;
  if (f.status && item.status !== f.status) return false;
  if (item.score < Number(f.min_score || 0)) return false;
  const sides = [item.a, item.b];
  const has = (value, pick) => !value || sides.some((side) => pick(side).some((v) => v.toLowerCase().includes(value.toLowerCase())));
  return has(f.sector, (s) => [...s.sectors, ...s.sector_codes]) && has(f.region, (s) => [s.region]) && has(f.stage, (s) => s.stages);
}

// --- queue -----------------------------------------------------------------------------------
function filters() {
  return { pair_kind: $("f-pair").value, sector: $("f-sector").value.trim(), region: $("f-region").value.trim(),
    stage: $("f-stage").value.trim(), min_score: $("f-score").value || "0", status: $("f-status").value, sort: $("f-sort").value };
}

async function loadQueue() {
  const params = new URLSearchParams(Object.entries(filters()).filter(([, v]) => v !== ""));
  const items = await api(`/v1/console/queue?${params}`);
  state.items = new Map(items.map((item) => [item.match_id, item]));
  state.selected.clear();
  $("select-all").checked = false;
  $("queue-body").replaceChildren(...items.map(queueRow));
}

function statusBadge(status) {
  const label = I18N.en[`st_${status}`] ? t(`st_${status}`) : I18N.en[`status_${status}`] ? t(`status_${status}`) : t(`inv_${status}`);
  return el("span", { class: `status ${status}` }, label);
}

function queueRow(item) {
  const box = el("input", { type: "checkbox", class: "pick", onclick: (e) => { e.stopPropagation(); toggle(item.match_id, e.target.checked); } });
  box.checked = state.selected.has(item.match_id);
  return el("tr", { "data-match": item.match_id, onclick: () => openDetail(item.match_id) },
    el("td", {}, box),
    el("td", {}, item.score.toFixed(3)),
    el("td", {}, item.pair_kind),
    el("td", {}, item.a.title),
    el("td", {}, item.b.title),
    el("td", {}, statusBadge(item.status)),
    el("td", {}, el("button", { class: "row-shortlist", onclick: (e) => { e.stopPropagation(); decide([item.match_id], "shortlist"); } }, t("shortlist"))));
}

function toggle(matchId, on) { if (on) state.selected.add(matchId); else state.selected.delete(matchId); }

async function decide(ids, verdict) {
  const message = $("queue-message");
  if (!ids.length) { message.textContent = t("select_first"); return; }
  const reason = $("reason").value.trim();
  if (verdict === "reject" && !reason) { message.textContent = t("need_reason"); return; }
  try {
    const items = verdict === "undo"
      ? await api("/v1/console/undo", { method: "POST", body: { match_ids: ids } })
      : await api("/v1/console/decisions", { method: "POST", body: { match_ids: ids, verdict, reason } });
    for (const item of items) {
      state.items.set(item.match_id, item);
      const row = document.querySelector(`tr[data-match="${CSS.escape(item.match_id)}"]`);
      if (row) row.replaceWith(queueRow(item));
    }
    message.textContent = `${t("decided")}: ${items.length}`;
    if (!$("detail").hidden && ids.includes($("detail").dataset.match)) openDetail($("detail").dataset.match);
  } catch (error) { message.textContent = error.message; }
}

function sideCard(side) {
  return el("div", { class: "card" },
    el("strong", {}, side.title), el("div", {}, `${side.kind} · ${side.owner}`),
    el("div", {}, side.region), el("div", {}, side.sectors.join(" / ")), el("div", {}, side.stages.join(" / ")));
}

async function openDetail(matchId) {
  const item = await api(`/v1/console/queue/${encodeURIComponent(matchId)}`);
  const pane = $("detail");
  pane.dataset.match = matchId;
  pane.hidden = false;
  const reasons = el("ul", { class: "reasons" }, item.reasons.map((r) =>
    el("li", { class: r.passed ? "passed" : "failed" }, `${r.passed ? "✓" : "✗"} ${state.lang === "zh" && r.detail_zh ? r.detail_zh : r.detail}`)));
  const audit = el("ul", {}, item.audit.map((d) => el("li", {}, `${new Date(d.created_at).toLocaleString()} · ${d.actor} · ${d.action} · ${d.previous_status} → ${d.status}${d.reason ? ` · ${d.reason}` : ""}`)));
  pane.replaceChildren(
    el("div", { class: "session-head" }, el("h3", {}, `${item.score.toFixed(3)} · ${item.pair_kind}`), statusBadge(item.status),
      el("button", { onclick: () => { pane.hidden = true; } }, t("close"))),
    el("div", { class: "sides" }, sideCard(item.a), sideCard(item.b)),
    el("p", {}, state.lang === "zh" ? item.explanation_zh : item.explanation),
    el("h4", {}, t("reasons")), reasons,
    el("div", { class: "actions" },
      ["shortlist", "reject", "not_relevant", "undo"].map((v) => el("button", { class: `detail-${v}`, onclick: () => decide([matchId], v) }, t(v)))),
    el("h4", {}, t("audit")), audit);
}

// --- sessions ---------------------------------------------------------------------------------
async function loadSessions() {
  const [pitches, sessions] = await Promise.all([api("/v1/pitches?limit=500"), api("/v1/sessions")]);
  state.pitches = pitches; state.sessions = sessions;
  const chosen = new Set([...$("s-featured").selectedOptions].map((o) => o.value));
  $("s-featured").replaceChildren(...pitches.map((p) => { const o = el("option", { value: p.id }, `${p.title} — ${p.company}`); o.selected = chosen.has(p.id); return o; }));
  $("sessions").replaceChildren(...(sessions.length ? sessions.map(sessionCard) : [el("p", {}, t("no_sessions"))]));
}

async function createSession(event) {
  event.preventDefault();
  $("session-error").textContent = "";
  const number = (id) => Number($(id).value);
  const body = { theme: $("s-theme").value, starts_at: new Date($("s-start").value).toISOString(), duration_minutes: number("s-duration"),
    venue: $("s-venue").value || null, online_link: $("s-link").value || null, capacity: number("s-capacity"),
    min_funds: number("s-funds"), min_governments: number("s-govs"), featured_pitch_ids: [...$("s-featured").selectedOptions].map((o) => o.value) };
  try { await api("/v1/sessions", { method: "POST", body }); $("session-form").reset(); await loadSessions(); }
  catch (error) { $("session-error").textContent = error.message; }
}

function roleLabel(role) { return t(`role_${role}`); }

function sessionCard(s) {
  const card = el("div", { class: "card session", "data-session": s.id });
  const invited = s.invitations.filter((i) => i.status !== "alternate");
  const alternates = s.invitations.filter((i) => i.status === "alternate");
  const draft = s.status === "draft";
  const message = el("div", { class: "plan-info", role: "status" });
  const rematch = el("input", { type: "checkbox", class: "rematch" });
  const saveList = async (inv, alt) => {
    try { await api(`/v1/sessions/${s.id}/invitations`, { method: "PUT", body: { invited: inv, alternates: alt } }); await loadSessions(); }
    catch (error) { message.textContent = error.message; }
  };
  const ids = (rows) => rows.map((i) => i.participant);
  const plan = async () => {
    message.replaceChildren("…");
    try {
      const result = await api(`/v1/sessions/${s.id}/plan`, { method: "POST", body: { allow_rematch: rematch.checked } });
      await loadSessions();
      const again = document.querySelector(`[data-session="${CSS.escape(s.id)}"] .plan-info`);
      if (again) again.textContent = `${t("objective")} ${result.objective} · ${t("bound")} ${result.bound} · ${t("gap")} ${(result.gap * 100).toFixed(1)}% · ${t("solved_in")} ${result.solve_seconds}s (${result.status})`;
    } catch (error) {
      const problems = (error.body && error.body.problems) || [];
      message.replaceChildren(el("ul", { class: "problems error" }, problems.length
        ? problems.map((p) => el("li", {}, `${state.lang === "zh" ? p.message_zh : p.message} — ${t("fix")}: ${state.lang === "zh" ? p.suggestion_zh : p.suggestion}`))
        : [el("li", {}, error.message)]));
    }
  };
  const action = (path, label, cls) => el("button", { class: cls, onclick: async () => {
    try { await api(`/v1/sessions/${s.id}/${path}`, { method: "POST" }); await loadSessions(); } catch (error) { message.textContent = error.message; } } }, t(label));
  const download = (name) => el("button", { class: `export-${name.replace(".", "-")}`, onclick: async () => {
    const response = await fetch(`/v1/sessions/${s.id}/${name}`, { headers: { Authorization: `Bearer ${state.key}` } });
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: `session-${s.id.slice(0, 8)}-${name}` });
    document.body.append(link); link.click(); link.remove(); URL.revokeObjectURL(url); } }, name);
  const attendance = new Map();
  const person = (i) => el("li", {},
    el("span", { class: "role", style: `color:${ROLE_COLORS[i.role] || "#333"}` }, `● ${roleLabel(i.role)} `),
    `${i.participant} `, i.featured ? "★ " : "", `(${i.quality.toFixed(2)}) `, statusBadge(i.status), " ",
    draft && !i.featured && i.status !== "alternate" ? el("button", { class: "remove", onclick: () => saveList(ids(invited).filter((p) => p !== i.participant), [i.participant, ...ids(alternates)]) }, t("remove")) : null,
    draft && i.status === "alternate" ? el("button", { class: "promote", onclick: () => saveList([...ids(invited), i.participant], ids(alternates).filter((p) => p !== i.participant)) }, t("promote")) : null,
    s.status === "published" && ["invited", "accepted", "attended", "no_show"].includes(i.status)
      ? el("label", { style: "display:inline" }, el("input", { type: "checkbox", class: "attend", onchange: (e) => attendance.set(i.participant, e.target.checked) }), t("attended")) : null);
  const followupForm = el("form", { class: "actions followup", onsubmit: async (e) => {
    e.preventDefault();
    const data = new FormData(e.target);
    try {
      await api("/v1/followups", { method: "POST", body: { pitch_id: data.get("pitch"), outcome: data.get("outcome"), occurred_on: data.get("date"), participant: data.get("participant") || null, session_id: s.id } });
      message.textContent = t("decided");
    } catch (error) { message.textContent = error.message; } } },
    el("select", { name: "pitch" }, s.featured.map((f) => el("option", { value: f.pitch_id }, f.title))),
    el("select", { name: "outcome" }, OUTCOMES.map((o) => el("option", { value: o }, state.lang === "zh" ? OUTCOME_ZH[o] : o.replace("_", " ")))),
    el("input", { type: "date", name: "date", required: true, value: new Date().toISOString().slice(0, 10) }),
    el("select", { name: "participant" }, el("option", { value: "" }, "—"), invited.filter((i) => !i.featured).map((i) => el("option", { value: i.participant }, i.participant))),
    el("button", { type: "submit" }, t("followup")));
  const parts = [
    el("div", { class: "session-head" }, el("h3", {}, s.theme), statusBadge(s.status)),
    el("div", {}, `${new Date(s.starts_at).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB")} · ${s.venue || s.online_link || ""} · ${invited.length}/${s.capacity}`),
    el("div", {}, `★ ${s.featured.map((f) => `${f.title} (${f.company})`).join(" · ")}`),
    draft ? el("div", { class: "actions" }, el("button", { class: "plan primary", onclick: plan }, t("plan")),
      el("label", { style: "display:inline-flex;flex-direction:row;gap:.3rem" }, rematch, t("rematch")),
      invited.length ? action("publish", "publish", "publish") : null) : null,
    message,
    el("h4", {}, `${t("invited")} (${invited.length})`), el("ul", { class: "invited" }, invited.map(person)),
    alternates.length ? el("h4", {}, `${t("alternates")} (${alternates.length})`) : null,
    alternates.length ? el("ol", { class: "alternates" }, alternates.map(person)) : null,
    s.status === "published" ? el("div", { class: "actions" },
      el("button", { class: "save-attendance", onclick: async () => {
        try { await api(`/v1/sessions/${s.id}/attendance`, { method: "POST", body: { attended: Object.fromEntries(attendance) } }); await loadSessions(); } catch (error) { message.textContent = error.message; } } }, t("save_attendance")),
      action("cancel", "cancel", "cancel")) : null,
    s.status === "published" ? followupForm : null,
    el("div", { class: "actions" }, el("span", {}, `${t("exports")}:`), ["roster.csv", "agenda.csv", "calendar.ics"].map(download))];
  card.append(...parts.filter((part) => part !== null));
  return card;
}

// --- overview (SVG drawn here: no chart library, no CDN) ------------------------------------------
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function barChart(rows, { width = 420, color = "#14213d", label = (r) => r.label } = {}) {
  const height = rows.length * 26 + 10;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img" });
  rows.forEach((row, i) => {
    const y = 5 + i * 26;
    root.append(svg("text", { x: 0, y: y + 15 }, label(row)));
    root.append(svg("rect", { x: 110, y, width: Math.max(2, ((width - 170) * row.value) / max), height: 20, fill: color, rx: 3 }));
    root.append(svg("text", { x: 116 + ((width - 170) * row.value) / max, y: y + 15 }, row.value));
  });
  return root;
}

function histogram(bins) {
  const kinds = Object.keys(bins);
  const width = 420, height = 180, colors = ["#14213d", "#fca311", "#2a9d8f"];
  const max = Math.max(1, ...kinds.flatMap((k) => bins[k]));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height + 40}`, width: "100%", role: "img" });
  const barWidth = (width - 40) / 10 / Math.max(1, kinds.length);
  kinds.forEach((kind, k) => {
    bins[kind].forEach((count, i) => {
      const h = (height * count) / max;
      root.append(svg("rect", { x: 30 + i * (width - 40) / 10 + k * barWidth, y: height - h, width: barWidth - 1, height: h, fill: colors[k % 3] }, undefined));
    });
    root.append(svg("text", { x: 30 + k * 140, y: height + 35, fill: colors[k % 3] }, `■ ${kind}`));
  });
  for (let i = 0; i <= 10; i += 2) root.append(svg("text", { x: 24 + i * (width - 40) / 10, y: height + 14 }, (i / 10).toFixed(1)));
  return root;
}

function compositionChart(sessions) {
  const width = 640, rowHeight = 30;
  const root = svg("svg", { viewBox: `0 0 ${width} ${sessions.length * rowHeight + 30}`, width: "100%", role: "img" });
  const max = Math.max(1, ...sessions.map((s) => Object.values(s.roles).reduce((a, b) => a + b, 0)));
  sessions.forEach((s, i) => {
    const y = 5 + i * rowHeight;
    root.append(svg("text", { x: 0, y: y + 15 }, s.theme.slice(0, 18)));
    let x = 150;
    for (const role of ["enterprise", "fund", "government"]) {
      const n = s.roles[role] || 0;
      const w = ((width - 330) * n) / max;
      if (n) { root.append(svg("rect", { x, y, width: w, height: 20, fill: ROLE_COLORS[role] })); root.append(svg("text", { x: x + 3, y: y + 15, fill: "#fff" }, n)); }
      x += w;
    }
    root.append(svg("text", { x: x + 6, y: y + 15 }, Object.keys(s.sectors).slice(0, 4).join(" · ")));
  });
  let x = 150;
  for (const role of ["enterprise", "fund", "government"]) {
    root.append(svg("text", { x, y: sessions.length * rowHeight + 22, fill: ROLE_COLORS[role] }, `■ ${roleLabel(role)}`));
    x += 110;
  }
  return root;
}

async function loadOverview() {
  const data = await api("/v1/console/overview");
  $("chart-funnel").replaceChildren(barChart(data.funnel.map((f) => ({ label: t(`funnel_${f.stage}`), value: f.count }))));
  $("chart-scores").replaceChildren(histogram(data.score_histogram));
  $("chart-sessions").replaceChildren(data.sessions.length ? compositionChart(data.sessions) : el("p", {}, t("no_sessions")));
}

async function loadAudit() {
  const rows = await api("/v1/console/audit");
  $("audit-body").replaceChildren(...rows.map((d) => el("tr", {},
    el("td", {}, new Date(d.created_at).toLocaleString()), el("td", {}, `${d.actor} (${d.actor_role})`), el("td", {}, d.action),
    el("td", {}, d.match_id.slice(0, 8)), el("td", {}, `${d.previous_status} ${d.previous_score.toFixed(3)} → ${d.status} ${d.score.toFixed(3)}`),
    el("td", {}, d.reason))));
}

// --- wiring -------------------------------------------------------------------------------------
async function showTab(name) {
  state.tab = name;
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((s) => { s.hidden = s.id !== `tab-${name}`; });
  const loaders = { queue: loadQueue, sessions: loadSessions, overview: loadOverview, audit: loadAudit };
  try { await loaders[name](); } catch (error) { $("queue-message").textContent = error.message; }
}

document.addEventListener("DOMContentLoaded", () => {
  applyLanguage();
  $("lang").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("salon.lang", state.lang);
    applyLanguage();
    if (!$("app").hidden) showTab(state.tab);
  });
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); login($("key").value.trim()); });
  $("logout").addEventListener("click", logout);
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); loadQueue(); });
  $("select-all").addEventListener("change", (e) => {
    document.querySelectorAll("#queue-body tr").forEach((row) => { row.querySelector(".pick").checked = e.target.checked; toggle(row.dataset.match, e.target.checked); });
  });
  $("bulk-shortlist").addEventListener("click", () => decide([...state.selected], "shortlist"));
  $("bulk-reject").addEventListener("click", () => decide([...state.selected], "reject"));
  $("bulk-not-relevant").addEventListener("click", () => decide([...state.selected], "not_relevant"));
  $("bulk-undo").addEventListener("click", () => decide([...state.selected], "undo"));
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("session-form").addEventListener("submit", createSession);
  if (state.key) login(state.key);
});
