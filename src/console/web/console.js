// Seata TC console: plain DOM, no framework, no build step. Data is always inserted as text.
'use strict';

const STATUS = [
  'UnKnown', 'Begin', 'Committing', 'CommitRetrying', 'Rollbacking', 'RollbackRetrying', 'TimeoutRollbacking',
  'TimeoutRollbackRetrying', 'AsyncCommitting', 'Committed', 'CommitFailed', 'Rollbacked', 'RollbackFailed',
  'TimeoutRollbacked', 'TimeoutRollbackFailed', 'Finished', 'CommitRetryTimeout', 'RollbackRetryTimeout', 'Deleting',
  'StopCommitOrCommitRetry', 'StopRollbackOrRollbackRetry',
];
const BRANCH_STATUS = [
  'Unknown', 'Registered', 'PhaseOne_Done', 'PhaseOne_Failed', 'PhaseOne_Timeout', 'PhaseTwo_Committed',
  'PhaseTwo_CommitFailed_Retryable', 'PhaseTwo_CommitFailed_Unretryable', 'PhaseTwo_Rollbacked',
  'PhaseTwo_RollbackFailed_Retryable', 'PhaseTwo_RollbackFailed_Unretryable',
  'PhaseTwo_CommitFailed_XAER_NOTA_Retryable', 'PhaseTwo_RollbackFailed_XAER_NOTA_Retryable', 'PhaseOne_RDONLY',
  'STOP_RETRY',
];
const COMMIT_RUNNING = [2, 3, 8];
const ROLLBACK_RUNNING = [4, 5, 6, 7];
const STOPPED = [19, 20];
const COMMIT_FAILED = [10, 16];
const ROLLBACK_FAILED = [12, 14, 17];
const API = '/api/v1/console';
const REFRESH_MS = 5000;

const state = {
  token: sessionStorage.getItem('seata-console-token'),
  user: sessionStorage.getItem('seata-console-user'),
  tab: 'transactions',
  txPage: 1,
  lockPage: 1,
  pageSize: 20,
  expanded: new Set(),
  timer: null,
  busy: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function statusClass(code) {
  if (code === 1) return 'open';
  if (COMMIT_RUNNING.includes(code) || ROLLBACK_RUNNING.includes(code)) return 'running';
  if (STOPPED.includes(code) || code === 18) return 'stopped';
  if (COMMIT_FAILED.includes(code) || ROLLBACK_FAILED.includes(code)) return 'failed';
  return 'done';
}

function badge(code) {
  return el('span', { class: `badge ${statusClass(code)}`, title: `status ${code}` }, STATUS[code] || String(code));
}

function time(ms) {
  const n = Number(ms);
  return ms === '' || ms === null || Number.isNaN(n) ? '' : new Date(n).toLocaleString();
}

let noticeTimer = null;
function notice(text, bad) {
  const n = $('notice');
  n.textContent = text;
  n.classList.toggle('bad', Boolean(bad));
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.hidden = true; }, bad ? 12000 : 6000);
}

async function call(method, path, params) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const resp = await fetch(url, { method, headers: state.token ? { Authorization: `Bearer ${state.token}` } : {} });
  let body = null;
  try { body = await resp.json(); } catch (_) { body = null; }
  if (resp.status === 401) {
    logout(body && body.message);
    throw new Error((body && body.message) || 'Unauthorized');
  }
  if (!body) throw new Error(`HTTP ${resp.status}`);
  return body;
}

// ---- login ----

function showLoggedIn(on) {
  $('login-view').hidden = on;
  $('tabs').hidden = !on;
  $('who').hidden = !on;
  $('who-name').textContent = on ? state.user || '' : '';
  $('transactions-view').hidden = !on || state.tab !== 'transactions';
  $('locks-view').hidden = !on || state.tab !== 'locks';
}

function logout(message) {
  state.token = null;
  sessionStorage.removeItem('seata-console-token');
  stopRefresh();
  showLoggedIn(false);
  if (message && message !== 'Unauthorized') {
    $('login-error').textContent = message;
    $('login-error').hidden = false;
  }
}

async function login(ev) {
  ev.preventDefault();
  const username = $('login-user').value;
  const password = $('login-password').value;
  $('login-error').hidden = true;
  try {
    const resp = await fetch('/api/v1/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
    const body = await resp.json();
    if (body.code !== '200' || typeof body.data !== 'string') {
      throw new Error(body.message || 'Login failed');
    }
    state.token = body.data.replace(/^Bearer /, '');
    state.user = username;
    sessionStorage.setItem('seata-console-token', state.token);
    sessionStorage.setItem('seata-console-user', username);
    $('login-password').value = '';
    showLoggedIn(true);
    refresh();
  } catch (e) {
    $('login-error').textContent = e.message;
    $('login-error').hidden = false;
  }
}

// ---- transactions ----

function txFilter() {
  const f = new FormData($('tx-filter'));
  const p = {};
  for (const k of ['xid', 'applicationId', 'transactionName', 'status']) p[k] = (f.get(k) || '').trim();
  for (const k of ['timeStart', 'timeEnd']) {
    const v = f.get(k);
    if (v) p[k] = String(new Date(v).getTime());
  }
  return p;
}

function actionsFor(tx) {
  const s = tx.status;
  const b = [];
  const act = (label, what, params, confirmText, cls) =>
    b.push(el('button', {
      type: 'button', class: `small ${cls || ''}`, 'data-action': what,
      onclick: (e) => { e.stopPropagation(); runAction(tx.xid, label, what, params, confirmText); },
    }, label));
  if (s === 1) {
    act('Roll back', 'changeGlobalStatus', { status: 'RollbackRetrying' },
      'Roll back this open transaction now? Its RMs get a BranchRollback, as if its TM had rolled it back.', 'danger');
  }
  if (COMMIT_RUNNING.includes(s) || ROLLBACK_RUNNING.includes(s) || STOPPED.includes(s)) {
    act('Retry now', 'sendCommitOrRollback', {}, null);
  }
  if (COMMIT_RUNNING.includes(s) || ROLLBACK_RUNNING.includes(s)) {
    act('Stop retrying', 'stopGlobalSession', {}, 'Stop retrying this transaction until you start it again?');
  }
  if (STOPPED.includes(s)) act('Start retrying', 'startGlobalSession', {}, null);
  if (COMMIT_FAILED.includes(s)) {
    act('Commit again', 'changeGlobalStatus', { status: 'CommitRetrying' },
      'Send the commit to the remaining branches again?');
  }
  if (ROLLBACK_FAILED.includes(s)) {
    act('Roll back again', 'changeGlobalStatus', { status: 'RollbackRetrying' },
      'Send the rollback to the remaining branches again?');
  }
  if (COMMIT_FAILED.includes(s) || ROLLBACK_FAILED.includes(s) || STOPPED.includes(s) || s === 18) {
    act('Delete', 'deleteGlobalSession', {},
      'Delete this transaction? Its remaining branches will never get phase two.', 'danger');
  }
  return b;
}

async function runAction(xid, label, what, params, confirmText) {
  if (confirmText && !window.confirm(`${confirmText}\n\n${xid}`)) return;
  const method = what.startsWith('delete') || what.startsWith('forceDelete') ? 'DELETE' : 'PUT';
  try {
    const body = await call(method, `${API}/globalSession/${what}`, { xid, ...params });
    if (body.success) {
      const d = body.data || {};
      notice(`${label}: ${d.statusName || ''} — ${d.detail || 'done'}`);
    } else {
      notice(`${label} refused: ${body.message}`, true);
    }
  } catch (e) {
    notice(`${label} failed: ${e.message}`, true);
  }
  refresh();
}

function branchTable(branches) {
  if (!branches || branches.length === 0) return el('p', { class: 'muted' }, 'No branch registered.');
  return el('table', { class: 'grid' },
    el('thead', {}, el('tr', {}, ['Branch', 'Type', 'Resource', 'Status', 'Client', 'Application data']
      .map((h) => el('th', {}, h)))),
    el('tbody', {}, branches.map((b) => el('tr', { class: 'branch' },
      el('td', { class: 'mono' }, b.branchId),
      el('td', {}, b.branchType),
      el('td', { class: 'mono' }, b.resourceId),
      el('td', {}, BRANCH_STATUS[b.status] || String(b.status)),
      el('td', { class: 'mono' }, b.clientId),
      el('td', { class: 'mono' }, b.applicationData || '')))));
}

function lockTable(locks) {
  if (!locks || locks.length === 0) return el('p', { class: 'muted' }, 'No row lock held.');
  return el('table', { class: 'grid' },
    el('thead', {}, el('tr', {}, ['Table', 'Primary key', 'Branch', 'Resource', 'Taken'].map((h) => el('th', {}, h)))),
    el('tbody', {}, locks.map((l) => el('tr', {},
      el('td', {}, l.tableName), el('td', { class: 'mono' }, l.pk), el('td', { class: 'mono' }, l.branchId),
      el('td', { class: 'mono' }, l.resourceId), el('td', {}, time(l.gmtCreate))))));
}

async function detailRow(tx) {
  const locks = el('div', {}, el('p', { class: 'muted' }, 'Loading row locks…'));
  const force = tx.status !== 1
    ? el('button', {
      type: 'button', class: 'small danger', 'data-action': 'forceDeleteGlobalSession',
      onclick: () => runAction(tx.xid, 'Force delete', 'forceDeleteGlobalSession', {},
        'Force delete? The TC forgets this transaction even if it is being retried, and RELEASES ITS ROW LOCKS: '
        + 'data that was not rolled back becomes visible to other transactions. Repair the data first.'),
    }, 'Force delete…')
    : null;
  const row = el('tr', { class: 'detail', 'data-xid': tx.xid },
    el('td', { colspan: '9' },
      el('h3', {}, 'Branches'), branchTable(tx.branchSessionVOs),
      el('h3', {}, 'Row locks'), locks,
      el('div', { class: 'actions' }, force)));
  call('GET', `${API}/globalLock/query`, { xid: tx.xid, pageSize: 100 })
    .then((body) => locks.replaceChildren(lockTable(body.data)))
    .catch((e) => locks.replaceChildren(el('p', { class: 'error' }, e.message)));
  return row;
}

function pager(container, page, pages, total, go) {
  container.replaceChildren(
    el('span', { class: 'muted' }, `${total} in all · page ${pages === 0 ? 0 : page} of ${pages}`),
    el('button', { type: 'button', class: 'small', disabled: page <= 1, onclick: () => go(page - 1) }, '‹ Previous'),
    el('button', { type: 'button', class: 'small', disabled: page >= pages, onclick: () => go(page + 1) }, 'Next ›'),
    el('select', {
      onchange: (e) => { state.pageSize = Number(e.target.value); go(1); },
    }, [10, 20, 50, 100].map((n) => el('option', { value: String(n), selected: n === state.pageSize }, `${n} / page`))),
  );
}

async function loadTransactions() {
  const body = await call('GET', `${API}/globalSession/query`, {
    ...txFilter(), withBranch: 'true', pageNum: state.txPage, pageSize: state.pageSize,
  });
  if (!body.success) throw new Error(body.message);
  if (body.pages > 0 && state.txPage > body.pages) {
    state.txPage = body.pages;
    return loadTransactions();
  }
  const rows = [];
  for (const tx of body.data) {
    const open = state.expanded.has(tx.xid);
    const toggle = () => {
      if (state.expanded.has(tx.xid)) state.expanded.delete(tx.xid); else state.expanded.add(tx.xid);
      refresh();
    };
    rows.push(el('tr', { class: 'tx', 'data-xid': tx.xid, 'data-status': STATUS[tx.status] || '' },
      el('td', {}, el('button', { type: 'button', class: 'toggle', 'aria-expanded': String(open), title: 'Details', onclick: toggle }, open ? '▾' : '▸')),
      el('td', { class: 'mono' }, tx.xid),
      el('td', {}, tx.transactionName),
      el('td', {}, tx.applicationId, el('div', { class: 'muted' }, tx.transactionServiceGroup)),
      el('td', { class: 'status' }, badge(tx.status)),
      el('td', {}, time(tx.beginTime)),
      el('td', {}, `${Number(tx.timeout) / 1000} s`),
      el('td', {}, String((tx.branchSessionVOs || []).length)),
      el('td', {}, el('div', { class: 'actions' }, actionsFor(tx)))));
    if (open) rows.push(await detailRow(tx));
  }
  $('tx-body').replaceChildren(...rows);
  $('tx-empty').hidden = body.data.length > 0;
  $('tx-total').textContent = `(${body.total})`;
  $('tx-updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  pager($('tx-pager'), body.pageNum, body.pages, body.total, (p) => { state.txPage = p; refresh(); });
}

// ---- locks ----

async function loadLocks() {
  const f = new FormData($('lock-filter'));
  const p = {};
  for (const k of ['xid', 'tableName', 'pk', 'resourceId']) p[k] = (f.get(k) || '').trim();
  const body = await call('GET', `${API}/globalLock/query`, { ...p, pageNum: state.lockPage, pageSize: state.pageSize });
  if (!body.success) throw new Error(body.message);
  $('lock-body').replaceChildren(...body.data.map((l) => el('tr', {},
    el('td', {}, l.tableName), el('td', { class: 'mono' }, l.pk), el('td', { class: 'mono' }, l.xid),
    el('td', { class: 'mono' }, l.branchId), el('td', { class: 'mono' }, l.resourceId), el('td', {}, time(l.gmtCreate)))));
  $('lock-empty').hidden = body.data.length > 0;
  $('lock-total').textContent = `(${body.total})`;
  pager($('lock-pager'), body.pageNum, body.pages, body.total, (pg) => { state.lockPage = pg; refresh(); });
}

// ---- refresh ----

async function refresh() {
  if (!state.token || state.busy) return;
  state.busy = true;
  try {
    if (state.tab === 'transactions') await loadTransactions(); else await loadLocks();
  } catch (e) {
    if (state.token) notice(e.message, true);
  } finally {
    state.busy = false;
  }
  scheduleRefresh();
}

function stopRefresh() {
  clearTimeout(state.timer);
  state.timer = null;
}

function scheduleRefresh() {
  stopRefresh();
  if (state.token && $('auto-refresh').checked) state.timer = setTimeout(refresh, REFRESH_MS);
}

function init() {
  const sel = $('status-filter');
  STATUS.forEach((name, code) => { if (code !== 0 && code !== 15) sel.append(el('option', { value: String(code) }, name)); });
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', () => logout());
  $('tx-filter').addEventListener('submit', (e) => { e.preventDefault(); state.txPage = 1; refresh(); });
  $('tx-filter').addEventListener('reset', () => setTimeout(() => { state.txPage = 1; refresh(); }, 0));
  $('lock-filter').addEventListener('submit', (e) => { e.preventDefault(); state.lockPage = 1; refresh(); });
  $('lock-filter').addEventListener('reset', () => setTimeout(() => { state.lockPage = 1; refresh(); }, 0));
  $('auto-refresh').addEventListener('change', scheduleRefresh);
  for (const t of document.querySelectorAll('.tab')) {
    t.addEventListener('click', () => {
      state.tab = t.dataset.tab;
      for (const o of document.querySelectorAll('.tab')) o.classList.toggle('active', o === t);
      showLoggedIn(true);
      refresh();
    });
  }
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
  showLoggedIn(Boolean(state.token));
  if (state.token) refresh();
}

init();
