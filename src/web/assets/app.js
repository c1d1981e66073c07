// wharf web UI — plain JavaScript, no build step, no third-party code.
// Contract: everything that comes from the API (names, descriptions, tags,
// annotations) reaches the page as text nodes through el(); nothing is ever
// assigned to innerHTML. The Content-Security-Policy forbids inline script.
'use strict';

const state = { user: null, csrf: '', config: { external_url: '' }, busy: 0 };

// ------------------------------------------------------------------ DOM helpers
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const $ = (id) => document.getElementById(id);
function mount(...nodes) {
  const m = $('main');
  m.replaceChildren(...nodes);
}
function showMessage(text, ok) {
  const m = $('message');
  if (!text) { m.hidden = true; m.textContent = ''; return; }
  m.textContent = text;
  m.className = ok ? 'message ok' : 'message';
  m.hidden = false;
}
function busy(delta) {
  state.busy += delta;
  $('busy').hidden = state.busy <= 0;
}

// ------------------------------------------------------------------ formatting
function when(secs) {
  if (!secs) return '—';
  const d = new Date(secs * 1000);
  return d.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}
function bytes(n) {
  if (n === null || n === undefined) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}
function shortDigest(d) { return d ? d.replace(/^(sha\d+:)(.{12}).*$/, '$1$2') : ''; }
function registryHost() {
  if (state.config.external_url) {
    try { return new URL(state.config.external_url).host; } catch (e) { /* fall through */ }
  }
  return location.host;
}
function registryBase() {
  return (state.config.external_url || location.origin).replace(/\/+$/, '');
}
function path(...parts) { return parts.map(encodeURIComponent).join('/'); }
function repoPath(repo) { return repo.split('/').map(encodeURIComponent).join('/'); }

// Shell words for the commands the UI builds: shArg always single-quotes
// (any string is safe inside: ' becomes '\''); shWord leaves a word bare when
// it holds only characters no shell treats specially.
function shArg(s) { return `'${String(s).replace(/'/g, `'\\''`)}'`; }
function shWord(s) { return /^[A-Za-z0-9._\/:@%+=,-]+$/.test(s) ? s : shArg(s); }

// Route segments must match the name grammars before they go into an API
// path: a crafted link (#/repo/../namespace/x/robots/y/info) must not make
// the browser request another API path in the user's name.
const ACCOUNT_NAME = /^[a-z0-9][a-z0-9_-]{1,63}$/;
const REPO_COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
function validNamespace(n) { return ACCOUNT_NAME.test(n); }
function validRepo(r) {
  const c = r.split('/');
  return r.length <= 255 && c.length >= 2 && validNamespace(c[0]) && c.slice(1).every((x) => REPO_COMPONENT.test(x));
}

// ------------------------------------------------------------------ API
class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}
async function api(method, p, body) {
  busy(1);
  try {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
    // Defence in depth: no dot segments reach fetch (which would resolve them).
    if (String(p).split(/[/?#]/).some((x) => x === '.' || x === '..' || /^%2e(%2e)?$/i.test(x) || x === '.%2e' || x === '%2e.')) {
      throw new ApiError('Not a valid address.', 400);
    }
    let r;
    try {
      r = await fetch('/api/v1/' + p, {
        method, headers, credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError('The registry cannot be reached. Check your connection and try again.', 0);
    }
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!r.ok) {
      let msg = `The registry answered ${r.status}.`;
      const err = data && data.errors && data.errors[0];
      if (err && err.message) msg = err.message.charAt(0).toUpperCase() + err.message.slice(1) + (err.detail ? ` (${err.detail})` : '') + '.';
      if (r.status === 429) {
        const after = r.headers.get('Retry-After');
        msg = `Too many failed sign-ins. Try again in ${after || 'a few'} seconds.`;
      }
      throw new ApiError(msg, r.status);
    }
    return data;
  } finally {
    busy(-1);
  }
}
// Runs an action and shows its failure as a message; a lost session returns to sign-in.
async function attempt(fn, okText) {
  try {
    const r = await fn();
    if (okText) showMessage(okText, true);
    return r;
  } catch (e) {
    if (e.status === 401 && state.user) {
      state.user = null;
      state.csrf = '';
      renderNav();
      showMessage('Your session has ended. Sign in again.');
      location.hash = '#/signin';
      return undefined;
    }
    showMessage(e.message || String(e));
    return undefined;
  }
}

// ------------------------------------------------------------------ clipboard
// navigator.clipboard needs a secure context (HTTPS or localhost); on a plain
// HTTP host fall back to selecting the text and the copy command.
async function copyText(text, fallbackField) {
  if (window.isSecureContext && navigator.clipboard && navigator.clipboard.writeText) {
    try { await navigator.clipboard.writeText(text); return true; } catch (e) { /* fall back */ }
  }
  let field = fallbackField;
  let temp = null;
  if (!field) {
    temp = el('textarea', { class: 'offscreen', 'aria-hidden': 'true' });  // placed off screen by CSS
    temp.value = text;
    document.body.append(temp);
    field = temp;
  }
  field.focus();
  field.select();
  field.setSelectionRange(0, text.length);
  let ok = false;
  try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
  if (temp) temp.remove();
  return ok;
}
function copyButton(label, getText, field) {
  const status = el('span', { class: 'copied', 'aria-live': 'polite' });
  const b = el('button', {
    type: 'button', class: 'icon',
    onclick: async () => {
      const ok = await copyText(getText(), field);
      status.textContent = ok ? 'Copied' : 'Press Ctrl+C to copy';
      setTimeout(() => { status.textContent = ''; }, 2500);
    },
  }, label);
  return el('span', {}, b, ' ', status);
}

// ------------------------------------------------------------------ navigation
function renderNav() {
  const nav = $('nav');
  if (!state.user) { nav.replaceChildren(); return; }
  nav.replaceChildren(
    el('a', { href: '#/' }, 'Namespaces'),
    el('a', { href: '#/account' }, 'Account'),
    state.user.superuser ? el('a', { href: '#/users' }, 'Users') : '',
    el('span', { class: 'who' }, 'Signed in as ', state.user.username),
    el('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
}

async function signOut() {
  await attempt(() => api('POST', 'signout'));
  state.user = null;
  state.csrf = '';
  renderNav();
  location.hash = '#/signin';
}

async function route() {
  showMessage('');
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (!state.user && parts[0] !== 'signin') {
    const s = await api('GET', 'session').catch(() => null);
    if (s && s.signed_in) { state.user = { username: s.username, superuser: !!s.superuser, organizations: [] }; state.csrf = s.csrf_token || ''; renderNav(); }
    else { location.hash = '#/signin'; return; }
  }
  const [page, ...rest] = parts;
  const notFound = async () => {
    await namespacesPage();
    showMessage('There is no such page: the address names no valid namespace or repository.');
  };
  if (page === 'signin') return signInPage();
  if (page === 'ns' && rest[0]) return validNamespace(rest[0]) && rest.length === 1 ? namespacePage(rest[0]) : notFound();
  if (page === 'repo' && rest.length >= 2) {
    const tabs = ['info', 'tags', 'settings'];
    let tab = 'tags';
    if (tabs.includes(rest[rest.length - 1]) && rest.length >= 3) tab = rest.pop();
    const repo = rest.join('/');
    return validRepo(repo) ? repositoryPage(repo, tab) : notFound();
  }
  if (page === 'robots' && rest[0]) return validNamespace(rest[0]) && rest.length === 1 ? robotsPage(rest[0]) : notFound();
  if (page === 'teams' && rest[0]) return validNamespace(rest[0]) && rest.length === 1 ? teamsPage(rest[0]) : notFound();
  if (page === 'account') return accountPage();
  if (page === 'users' && rest.length === 0) return usersPage();
  return namespacesPage();
}

// ------------------------------------------------------------------ sign in
function signInPage() {
  if (state.user) { location.hash = '#/'; return; }
  const user = el('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const pass = el('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = el('form', {
    class: 'signin',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const r = await attempt(() => api('POST', 'signin', { username: user.value, password: pass.value }));
      if (!r) { pass.value = ''; pass.focus(); return; }
      state.csrf = r.csrf_token;
      state.user = await attempt(() => api('GET', 'user/'));
      renderNav();
      location.hash = '#/';
    },
  },
  el('h1', {}, 'Sign in to wharf'),
  el('label', {}, 'Username', user),
  el('label', {}, 'Password', pass),
  el('button', { type: 'submit', class: 'primary' }, 'Sign in'),
  el('p', { class: 'muted' }, 'Robot accounts cannot sign in here; they pull, push and fetch squashed images with their token.'));
  mount(form);
  user.focus();
}

// ------------------------------------------------------------------ namespaces
async function namespacesPage() {
  const me = await attempt(() => api('GET', 'user/'));
  if (!me) return;
  state.user = me;
  const names = [me.username, ...me.organizations];
  const orgName = el('input', { name: 'org', required: true, placeholder: 'acme', pattern: '[a-z0-9][a-z0-9_\\-]{1,63}' });
  mount(
    el('h1', {}, 'Namespaces'),
    el('div', { class: 'cards' }, names.map((n, i) => el('div', { class: 'card' },
      el('a', { href: '#/ns/' + encodeURIComponent(n) }, n),
      ' ', el('span', { class: 'badge' }, i === 0 ? 'you' : 'organization')))),
    el('h2', {}, 'Create an organization'),
    el('form', {
      class: 'row',
      onsubmit: async (ev) => {
        ev.preventDefault();
        const ok = await attempt(() => api('POST', 'organization/', { name: orgName.value }), `Organization ${orgName.value} created.`);
        if (ok) location.hash = '#/ns/' + encodeURIComponent(orgName.value);
      },
    }, el('label', {}, 'Name', orgName), el('button', { type: 'submit', class: 'primary' }, 'Create organization')));
}

async function namespacePage(ns) {
  const isOrg = state.user && state.user.organizations && state.user.organizations.includes(ns);
  const q = el('input', { type: 'search', name: 'q', placeholder: 'Search repositories', 'aria-label': 'Search repositories' });
  const list = el('div');
  let timer = null;
  const load = async (after) => {
    const params = new URLSearchParams({ namespace: ns, limit: '50' });
    if (q.value) params.set('q', q.value);
    if (after) params.set('next_page', after);
    const r = await attempt(() => api('GET', 'repository?' + params));
    if (!r) return;
    const rows = r.repositories.map((x) => el('tr', {},
      el('td', { class: 'name' }, el('a', { href: '#/repo/' + repoPath(x.namespace + '/' + x.name) + '/tags' }, x.name)),
      el('td', {}, el('span', { class: 'badge' + (x.is_public ? ' public' : '') }, x.is_public ? 'public' : 'private')),
      el('td', { class: 'hide-narrow' }, when(x.last_modified)),
      el('td', {}, String(x.tag_count))));
    list.replaceChildren(
      rows.length ? el('div', { class: 'table-wrap' }, el('table', {},
        el('thead', {}, el('tr', {}, el('th', {}, 'Repository'), el('th', {}, 'Visibility'),
          el('th', { class: 'hide-narrow' }, 'Last pushed'), el('th', {}, 'Tags'))),
        el('tbody', {}, rows)))
        : el('p', { class: 'muted' }, q.value ? 'No repository matches.' : 'No repositories yet. Create one below, or push an image to ' + registryHost() + '/' + ns + '/NAME.'),
      r.next_page ? el('div', { class: 'pager' }, el('button', { type: 'button', onclick: () => load(r.next_page) }, 'Next page')) : '');
  };
  q.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => load(), 250); });
  const name = el('input', { name: 'repository', required: true, placeholder: 'web' });
  const vis = el('select', { name: 'visibility' }, el('option', { value: 'private' }, 'private'), el('option', { value: 'public' }, 'public'));
  mount(
    el('h1', {}, ns),
    el('div', { class: 'row' },
      el('a', { href: '#/robots/' + encodeURIComponent(ns) }, 'Robot accounts'),
      isOrg ? el('a', { href: '#/teams/' + encodeURIComponent(ns) }, 'Teams') : ''),
    el('div', { class: 'row' }, q),
    list,
    el('h2', {}, 'Create a repository'),
    el('form', {
      class: 'row',
      onsubmit: async (ev) => {
        ev.preventDefault();
        const ok = await attempt(() => api('POST', 'repository', { namespace: ns, repository: name.value, visibility: vis.value }),
          `Repository ${ns}/${name.value} created.`);
        if (ok) { name.value = ''; load(); }
      },
    }, el('label', {}, 'Name', name), el('label', {}, 'Visibility', vis), el('button', { type: 'submit', class: 'primary' }, 'Create repository')));
  load();
}

// ------------------------------------------------------------------ repository
async function repositoryPage(repo, tab) {
  const info = await attempt(() => api('GET', 'repository/' + repoPath(repo)));
  if (!info) { mount(el('h1', {}, repo)); return; }
  const ns = info.namespace;
  const tabLink = (t, label) => el('a', { href: '#/repo/' + repoPath(repo) + '/' + t, 'aria-current': tab === t ? 'page' : false }, label);
  const body = el('div');
  mount(
    el('p', {}, el('a', { href: '#/ns/' + encodeURIComponent(ns) }, ns), ' / '),
    el('h1', {}, repo, ' ', el('span', { class: 'badge' + (info.is_public ? ' public' : '') }, info.is_public ? 'public' : 'private')),
    el('nav', { class: 'tabs', 'aria-label': 'Repository' },
      tabLink('info', 'Information'), tabLink('tags', 'Tags'), info.can_admin ? tabLink('settings', 'Settings') : ''),
    body);
  if (tab === 'info') return infoTab(body, repo, info);
  if (tab === 'settings' && info.can_admin) return settingsTab(body, repo, info);
  return tagsTab(body, repo, info);
}

function infoTab(body, repo, info) {
  const host = registryHost();
  const cmds = [`docker pull ${shWord(`${host}/${repo}:TAG`)}`, `podman pull ${shWord(`${host}/${repo}:TAG`)}`,
    `curl -fL -u 'ROBOT:TOKEN' ${shArg(`${registryBase()}/c1/squash/${repo}/TAG`)} | docker load`];
  body.replaceChildren(
    el('h2', {}, 'Description'),
    info.description ? el('div', { class: 'pre' }, info.description) : el('p', { class: 'muted' }, 'No description.'),
    el('h2', {}, 'Pull commands'),
    ...cmds.map((c) => el('div', { class: 'row' }, el('code', { class: 'pre' }, c), copyButton('Copy', () => c))),
    el('p', { class: 'muted' }, 'Use the Fetch Tag button on the Tags tab for a ready command, including a robot account for squashed downloads.'));
}

async function tagsTab(body, repo, info) {
  const view = { sort: 'name', page: 1, limit: 50, filter: '' };
  const table = el('div');
  const filter = el('input', { type: 'search', placeholder: 'Filter tags', 'aria-label': 'Filter tags' });
  let timer = null;
  filter.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => { view.filter = filter.value; view.page = 1; load(); }, 250); });
  const sortHeader = (key, label, cls) => {
    const active = view.sort === key || view.sort === '-' + key;
    const arrow = view.sort === key ? ' ▲' : view.sort === '-' + key ? ' ▼' : '';
    return el('th', { class: cls, 'aria-sort': active ? (view.sort.startsWith('-') ? 'descending' : 'ascending') : 'none' },
      el('button', { type: 'button', class: 'link', onclick: () => { view.sort = view.sort === key ? '-' + key : key; view.page = 1; load(); } }, label + arrow));
  };
  const load = async () => {
    const params = new URLSearchParams({ sort: view.sort, page: String(view.page), limit: String(view.limit) });
    if (view.filter) params.set('filter', view.filter);
    const r = await attempt(() => api('GET', 'repository/' + repoPath(repo) + '/tag/?' + params));
    if (!r) return;
    const details = (t) => {
      const pairs = (title, obj) => {
        const keys = Object.keys(obj || {});
        return [el('h3', {}, title), keys.length
          ? el('dl', {}, keys.map((k) => [el('dt', {}, k), el('dd', {}, String(obj[k]))]))
          : el('p', { class: 'muted' }, 'none')];
      };
      return el('tr', { class: 'details', 'data-details': t.name },
        el('td', { colspan: 7 }, el('div', { class: 'detail-grid' },
          el('div', {}, pairs('Labels', t.labels)), el('div', {}, pairs('Annotations', t.annotations)),
          el('div', {}, el('h3', {}, 'Digest'), el('code', { class: 'token' }, t.manifest_digest)))));
    };
    const rows = r.tags.flatMap((t) => { const row = el('tr', { 'data-tag': t.name },
      el('td', { class: 'name' }, el('button', {
        type: 'button', class: 'link', 'aria-expanded': 'false', 'aria-label': `Details of ${t.name}`,
        onclick: (ev) => {
          const b = ev.currentTarget;
          const open = b.getAttribute('aria-expanded') === 'true';
          b.setAttribute('aria-expanded', String(!open));
          if (open) row.nextSibling.remove();
          else row.after(details(t));
        },
      }, t.name)),
      el('td', { class: 'hide-narrow' }, when(t.last_modified)),
      el('td', { class: 'hide-narrow' }, bytes(t.size)),
      el('td', { class: 'hide-narrow' }, el('code', { title: t.manifest_digest }, shortDigest(t.manifest_digest)), ' ',
        copyButton('Copy digest', () => t.manifest_digest)),
      el('td', { class: 'hide-narrow' }, t.platforms.length ? t.platforms.join(', ') : '—'),
      el('td', {}, t.squash_cached ? el('span', { class: 'badge cached' }, 'cached') : el('span', { class: 'muted' }, 'not cached'),
        info.can_write && !t.squash_cached ? [' ', el('button', {
          type: 'button', class: 'icon', 'aria-label': `Prime squashed download of ${t.name}`,
          onclick: async () => {
            const ok = await attempt(() => api('POST', 'repository/' + repoPath(repo) + '/tag/' + encodeURIComponent(t.name) + '/prime'),
              `Building the squashed download of ${t.name}; it is served from the cache once done.`);
            if (ok) setTimeout(load, 1500);
          },
        }, 'Prime')] : ''),
      el('td', {}, el('button', {
        type: 'button', class: 'icon', 'aria-label': `Fetch Tag ${t.name}`, title: 'Fetch Tag',
        onclick: () => openFetchDialog(repo, info, t),
      }, '⤓ Fetch')));
      return [row]; });
    const pages = Math.max(1, Math.ceil(r.total / view.limit));
    table.replaceChildren(
      r.total === 0 ? el('p', { class: 'muted' }, view.filter ? 'No tag matches.' : 'No tags yet. Push an image to ' + registryHost() + '/' + repo + ':TAG.')
        : el('div', { class: 'table-wrap' }, el('table', {},
          el('thead', {}, el('tr', {}, sortHeader('name', 'Tag'), sortHeader('last_modified', 'Last modified', 'hide-narrow'),
            el('th', { class: 'hide-narrow' }, 'Size'), el('th', { class: 'hide-narrow' }, 'Manifest'), el('th', { class: 'hide-narrow' }, 'Platforms'),
            el('th', {}, 'Squashed'), el('th', {}, el('span', { class: 'muted' }, 'Fetch')))),
          el('tbody', {}, rows))),
      r.total > view.limit ? el('div', { class: 'pager' },
        el('button', { type: 'button', disabled: view.page <= 1, onclick: () => { view.page--; load(); } }, 'Previous'),
        el('span', {}, `Page ${view.page} of ${pages} (${r.total} tags)`),
        el('button', { type: 'button', disabled: !r.has_additional, onclick: () => { view.page++; load(); } }, 'Next')) : '');
  };
  body.replaceChildren(el('div', { class: 'row' }, filter), table);
  load();
}

async function settingsTab(body, repo, info) {
  const vis = el('select', { name: 'visibility', 'aria-label': 'Visibility' },
    el('option', { value: 'private', selected: !info.is_public }, 'private'),
    el('option', { value: 'public', selected: info.is_public }, 'public'));
  const desc = el('textarea', { rows: 3, cols: 60, 'aria-label': 'Description' });
  desc.value = info.description || '';
  const prime = el('input', { type: 'checkbox', checked: info.auto_prime });
  const perms = el('div');
  const loadPerms = async () => {
    const r = await attempt(() => api('GET', 'repository/' + repoPath(repo) + '/permissions/'));
    if (!r) return;
    perms.replaceChildren(r.permissions.length ? el('div', { class: 'table-wrap' }, el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'Kind'), el('th', {}, 'Name'), el('th', {}, 'Role'), el('th', {}, ''))),
      el('tbody', {}, r.permissions.map((p) => {
        const role = el('select', { 'aria-label': `Role of ${p.name}`,
          onchange: async () => { await attempt(() => api('PUT', `repository/${repoPath(repo)}/permissions/${p.kind}/${encodeURIComponent(p.name)}`, { role: role.value }), `${p.name} now has ${role.value}.`); } },
        ['read', 'write', 'admin'].map((x) => el('option', { value: x, selected: x === p.role }, x)));
        return el('tr', {}, el('td', {}, p.kind), el('td', { class: 'name' }, p.name), el('td', {}, role),
          el('td', {}, el('button', { type: 'button', class: 'danger', onclick: async () => {
            const ok = await attempt(() => api('DELETE', `repository/${repoPath(repo)}/permissions/${p.kind}/${encodeURIComponent(p.name)}`), `Removed ${p.name}.`);
            if (ok !== undefined) loadPerms();
          } }, 'Remove')));
      })))) : el('p', { class: 'muted' }, 'No explicit permissions. Namespace administrators always have admin.'));
  };
  const kind = el('select', { 'aria-label': 'Kind' }, ['user', 'team', 'robot'].map((k) => el('option', { value: k }, k)));
  const who = el('input', { required: true, placeholder: 'name, team or ns+robot', 'aria-label': 'Name' });
  const role = el('select', { 'aria-label': 'Role' }, ['read', 'write', 'admin'].map((k) => el('option', { value: k }, k)));
  body.replaceChildren(
    el('h2', {}, 'Repository'),
    el('form', {
      class: 'row',
      onsubmit: async (ev) => {
        ev.preventDefault();
        const a = await attempt(() => api('POST', 'repository/' + repoPath(repo) + '/changevisibility', { visibility: vis.value }));
        if (!a) return;
        await attempt(() => api('PUT', 'repository/' + repoPath(repo), { description: desc.value, auto_prime: prime.checked }), 'Settings saved.');
      },
    }, el('label', {}, 'Visibility', vis), el('label', {}, 'Description', desc),
    el('label', { class: 'inline' }, prime, 'Prime the squashed download on every push'),
    el('button', { type: 'submit', class: 'primary' }, 'Save')),
    el('h2', {}, 'Permissions'), perms,
    el('form', {
      class: 'row',
      onsubmit: async (ev) => {
        ev.preventDefault();
        const ok = await attempt(() => api('PUT', `repository/${repoPath(repo)}/permissions/${kind.value}/${encodeURIComponent(who.value)}`, { role: role.value }),
          `${who.value} now has ${role.value}.`);
        if (ok) { who.value = ''; loadPerms(); }
      },
    }, el('label', {}, 'Kind', kind), el('label', {}, 'Name', who), el('label', {}, 'Role', role),
    el('button', { type: 'submit' }, 'Add permission')));
  loadPerms();
}

// ------------------------------------------------------------------ Fetch Tag
const FORMATS = [
  ['docker-tag', 'Docker Pull (by tag)'], ['docker-digest', 'Docker Pull (by digest)'],
  ['podman-tag', 'Podman Pull (by tag)'], ['podman-digest', 'Podman Pull (by digest)'],
  ['squash', 'Squashed Docker Image'],
];

async function openFetchDialog(repo, info, tag) {
  const dlg = $('fetch-dialog');
  const ns = info.namespace;
  const host = registryHost();
  const st = { format: 'docker-tag', robot: '', token: '', robots: null, robotsError: '', platform: '' };
  if (tag.platforms.length) st.platform = tag.platforms.includes('linux/amd64') ? 'linux/amd64' : tag.platforms[0];
  const format = el('select', { id: 'fetch-format', 'aria-label': 'Format' }, FORMATS.map(([v, l]) => el('option', { value: v }, l)));
  const extra = el('div');
  const cmd = el('textarea', { id: 'fetch-command', readonly: true, 'aria-label': 'Command', rows: 3 });
  const copyStatus = el('span', { class: 'copied', 'aria-live': 'polite' });
  const copy = el('button', {
    type: 'button', class: 'primary', id: 'copy-command',
    onclick: async () => {
      const ok = await copyText(cmd.value, cmd);
      copyStatus.textContent = ok ? 'Copied' : 'Select the command and press Ctrl+C';
    },
  }, 'Copy Command');

  const robotHasRead = (name) => {
    const r = (st.robots || []).find((x) => x.name === name);
    return !!r && r.permissions.some((p) => p.repository === repo && ['read', 'write', 'admin'].includes(p.role));
  };
  const loadRobots = async () => {
    if (!info.namespace_admin) {  // only namespace administrators may read robot tokens
      st.robots = [];
      st.robotsError = `Only administrators of ${ns} can read robot tokens. Ask one of them for the command, or for a robot account with read permission on ${repo}.`;
      return;
    }
    try {
      const r = await api('GET', `namespace/${encodeURIComponent(ns)}/robots`);
      st.robots = r.robots;
    } catch (e) {
      st.robots = [];
      st.robotsError = e.status === 403
        ? `Only administrators of ${ns} can read robot tokens. Ask one of them for the command, or for a robot account with read permission on ${repo}.`
        : e.message;
    }
  };
  const render = async () => {
    copyStatus.textContent = '';
    const nodes = [];
    let command = '';
    const ref = st.format.endsWith('digest') ? `${host}/${repo}@${tag.manifest_digest}` : `${host}/${repo}:${tag.name}`;
    if (st.format.startsWith('docker')) command = `docker pull ${shWord(ref)}`;
    if (st.format.startsWith('podman')) command = `podman pull ${shWord(ref)}`;
    if (st.format === 'squash') {
      if (tag.platforms.length) {
        nodes.push(el('label', {}, 'Platform', el('select', {
          id: 'fetch-platform', 'aria-label': 'Platform',
          onchange: (ev) => { st.platform = ev.target.value; render(); },
        }, tag.platforms.map((p) => el('option', { value: p, selected: p === st.platform }, p)))));
      }
      let url = `${registryBase()}/c1/squash/${repo}/${encodeURIComponent(tag.name)}`;
      if (st.platform) url += `?platform=${encodeURIComponent(st.platform)}`;
      if (info.is_public) {
        nodes.push(el('p', { class: 'muted' }, 'This repository is public: the command needs no credentials.'));
        command = `curl -fL ${shArg(url)} | docker load`;
      } else {
        if (st.robots === null) await loadRobots();
        if (st.robotsError) {
          nodes.push(el('p', { class: 'warn', id: 'robot-explanation' }, st.robotsError));
        } else if (!st.robots.length) {
          nodes.push(el('p', { class: 'warn', id: 'robot-explanation' }, `A squashed download of a private repository needs a robot account with read permission. ${ns} has none yet: `,
            el('a', { href: '#/robots/' + encodeURIComponent(ns), onclick: () => dlg.close() }, 'create one'), '.'));
        } else {
          nodes.push(el('label', {}, 'Robot account', el('select', {
            id: 'fetch-robot', 'aria-label': 'Robot account',
            onchange: async (ev) => {
              st.robot = ev.target.value;
              st.token = '';
              if (st.robot) {
                const r = await attempt(() => api('GET', `namespace/${encodeURIComponent(ns)}/robots/${encodeURIComponent(st.robot.split('+')[1])}`));
                st.token = r ? r.token : '';
              }
              render();
            },
          }, el('option', { value: '' }, 'Choose a robot…'),
          st.robots.map((r) => el('option', { value: r.name, selected: r.name === st.robot }, r.name)))));
          if (st.robot && !robotHasRead(st.robot)) {
            const warn = el('div', { class: 'warn', id: 'robot-warning' }, `${st.robot} has no read permission on ${repo}, so this command would fail.`);
            if (info.can_admin) {
              warn.append(' ', el('button', {
                type: 'button', id: 'grant-read',
                onclick: async () => {
                  const ok = await attempt(() => api('PUT', `repository/${repoPath(repo)}/permissions/robot/${encodeURIComponent(st.robot)}`, { role: 'read' }),
                    `${st.robot} may now read ${repo}.`);
                  if (ok) { st.robots = null; await loadRobots(); render(); }
                },
              }, 'Grant read'));
            } else {
              warn.append(' Ask an administrator of this repository to grant it read.');
            }
            nodes.push(warn);
          }
        }
        command = st.robot && st.token ? `curl -fL -u ${shArg(`${st.robot}:${st.token}`)} ${shArg(url)} | docker load` : '';
      }
    }
    extra.replaceChildren(...nodes);
    cmd.value = command;
    copy.disabled = !command;
  };
  format.addEventListener('change', () => { st.format = format.value; render(); });
  dlg.replaceChildren(
    el('h2', { id: 'fetch-title' }, `Fetch Tag ${tag.name}`),
    el('label', {}, 'Format', format),
    extra,
    el('label', { class: 'block' }, 'Command', cmd),
    el('div', { class: 'dialog-actions' }, copyStatus, copy,
      el('button', { type: 'button', onclick: () => dlg.close() }, 'Close')));
  await render();
  dlg.showModal();
  format.focus();
}

// ------------------------------------------------------------------ users (superusers)
// Disable or enable a user (their sessions and tokens end at once) or delete
// one whose namespace holds no repositories.
async function usersPage() {
  const list = el('div');
  const load = async () => {
    const r = await attempt(() => api('GET', 'superuser/users'));
    if (!r) return;
    list.replaceChildren(el('div', { class: 'table-wrap' }, el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'User'), el('th', { class: 'hide-narrow' }, 'Email'), el('th', {}, 'Status'), el('th', {}, ''))),
      el('tbody', {}, r.users.map((u) => el('tr', { 'data-user': u.username },
        el('td', { class: 'name' }, u.username, u.superuser ? el('span', { class: 'muted' }, ' (superuser)') : ''),
        el('td', { class: 'hide-narrow' }, u.email || '—'),
        el('td', { class: 'status' }, u.enabled ? 'enabled' : 'disabled'),
        el('td', {}, u.username === state.user.username ? el('span', { class: 'muted' }, 'you') : [
          el('button', { type: 'button', onclick: async () => {
            if (u.enabled && !confirm(`Disable ${u.username}? They are signed out and their tokens stop working at once.`)) return;
            const ok = await attempt(() => api('PUT', `superuser/users/${encodeURIComponent(u.username)}`, { enabled: !u.enabled }),
              `${u.username} ${u.enabled ? 'disabled' : 'enabled'}.`);
            if (ok) load();
          } }, u.enabled ? 'Disable' : 'Enable'), ' ',
          el('button', { type: 'button', class: 'danger', onclick: async () => {
            if (!confirm(`Delete ${u.username}? Their robots, tokens and permissions go with them.`)) return;
            const ok = await attempt(() => api('DELETE', `superuser/users/${encodeURIComponent(u.username)}`), `${u.username} deleted.`);
            if (ok !== undefined) load();
          } }, 'Delete')])))))));
  };
  mount(el('h1', {}, 'Users'), list);
  await load();
}

// ------------------------------------------------------------------ robots
async function robotsPage(ns) {
  const list = el('div');
  const load = async () => {
    const r = await attempt(() => api('GET', `namespace/${encodeURIComponent(ns)}/robots`));
    if (!r) return;
    list.replaceChildren(r.robots.length ? el('div', { class: 'table-wrap' }, el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'Robot'), el('th', { class: 'hide-narrow' }, 'Description'), el('th', {}, 'Repositories'), el('th', {}, 'Token'), el('th', {}, ''))),
      el('tbody', {}, r.robots.map((rb) => {
        const short = rb.name.split('+')[1];
        const tokenCell = el('td', {}, el('button', {
          type: 'button', onclick: async () => {
            const t = await attempt(() => api('GET', `namespace/${encodeURIComponent(ns)}/robots/${encodeURIComponent(short)}`));
            if (t) tokenCell.replaceChildren(el('code', { class: 'mono token' }, t.token), ' ', copyButton('Copy', () => t.token));
          },
        }, 'Show token'));
        return el('tr', {},
          el('td', { class: 'name' }, rb.name),
          el('td', { class: 'hide-narrow' }, rb.description || '—'),
          el('td', {}, rb.permissions.length ? rb.permissions.map((p) => `${p.repository} (${p.role})`).join(', ') : el('span', { class: 'muted' }, 'none')),
          tokenCell,
          el('td', {},
            el('button', { type: 'button', onclick: async () => {
              if (!confirm(`Regenerate the token of ${rb.name}? The old token stops working at once.`)) return;
              const t = await attempt(() => api('POST', `namespace/${encodeURIComponent(ns)}/robots/${encodeURIComponent(short)}/regenerate`), `New token for ${rb.name}.`);
              if (t) tokenCell.replaceChildren(el('code', { class: 'mono token' }, t.token), ' ', copyButton('Copy', () => t.token));
            } }, 'Regenerate'), ' ',
            el('button', { type: 'button', class: 'danger', onclick: async () => {
              if (!confirm(`Delete ${rb.name}?`)) return;
              const ok = await attempt(() => api('DELETE', `namespace/${encodeURIComponent(ns)}/robots/${encodeURIComponent(short)}`), `${rb.name} deleted.`);
              if (ok !== undefined) load();
            } }, 'Delete')));
      })))) : el('p', { class: 'muted' }, 'No robot accounts yet.'));
  };
  const name = el('input', { required: true, placeholder: 'deployer', pattern: '[a-z0-9][a-z0-9_\\-]{1,63}', 'aria-label': 'Robot name' });
  const desc = el('input', { placeholder: 'what it is for', 'aria-label': 'Description' });
  mount(
    el('p', {}, el('a', { href: '#/ns/' + encodeURIComponent(ns) }, ns), ' / '),
    el('h1', {}, `Robot accounts of ${ns}`),
    list,
    el('h2', {}, 'Create a robot account'),
    el('form', {
      class: 'row',
      onsubmit: async (ev) => {
        ev.preventDefault();
        const r = await attempt(() => api('PUT', `namespace/${encodeURIComponent(ns)}/robots/${encodeURIComponent(name.value)}`, { description: desc.value }),
          `Robot ${ns}+${name.value} created. Grant it read on a repository in that repository's Settings (or from the Fetch Tag dialog).`);
        if (r) { name.value = ''; desc.value = ''; load(); }
      },
    }, el('label', {}, 'Name', name), el('label', {}, 'Description', desc), el('button', { type: 'submit', class: 'primary' }, 'Create robot')));
  load();
}

// ------------------------------------------------------------------ teams
async function teamsPage(org) {
  const list = el('div');
  const load = async () => {
    const r = await attempt(() => api('GET', `organization/${encodeURIComponent(org)}`));
    if (!r) return;
    const sections = [];
    for (const t of r.teams) {
      const m = await attempt(() => api('GET', `organization/${encodeURIComponent(org)}/team/${encodeURIComponent(t.name)}/members`));
      const member = el('input', { required: true, placeholder: 'user or ns+robot', 'aria-label': `Add member to ${t.name}` });
      sections.push(el('section', { class: 'card' },
        el('h2', {}, t.name, ' ', el('span', { class: 'badge' }, t.role)),
        t.description ? el('p', { class: 'muted' }, t.description) : '',
        el('ul', {}, (m ? m.members : []).map((x) => el('li', {}, x.name, ' ',
          r.is_admin ? el('button', { type: 'button', class: 'link', 'aria-label': `Remove ${x.name} from ${t.name}`, onclick: async () => {
            const ok = await attempt(() => api('DELETE', `organization/${encodeURIComponent(org)}/team/${encodeURIComponent(t.name)}/members/${encodeURIComponent(x.name)}`), `${x.name} removed from ${t.name}.`);
            if (ok !== undefined) load();
          } }, 'remove') : ''))),
        r.is_admin ? el('form', {
          class: 'row',
          onsubmit: async (ev) => {
            ev.preventDefault();
            const ok = await attempt(() => api('PUT', `organization/${encodeURIComponent(org)}/team/${encodeURIComponent(t.name)}/members/${encodeURIComponent(member.value)}`), `${member.value} added to ${t.name}.`);
            if (ok) load();
          },
        }, member, el('button', { type: 'submit' }, 'Add member')) : ''));
    }
    list.replaceChildren(el('div', { class: 'cards' }, sections));
    createForm.hidden = !r.is_admin;
  };
  const name = el('input', { required: true, placeholder: 'developers', 'aria-label': 'Team name' });
  const role = el('select', { 'aria-label': 'Team role' }, ['member', 'creator', 'admin'].map((x) => el('option', { value: x }, x)));
  const createForm = el('form', {
    class: 'row', hidden: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      const ok = await attempt(() => api('PUT', `organization/${encodeURIComponent(org)}/team/${encodeURIComponent(name.value)}`, { role: role.value }), `Team ${name.value} saved.`);
      if (ok) { name.value = ''; load(); }
    },
  }, el('label', {}, 'Team', name), el('label', {}, 'Role', role), el('button', { type: 'submit', class: 'primary' }, 'Create team'));
  mount(
    el('p', {}, el('a', { href: '#/ns/' + encodeURIComponent(org) }, org), ' / '),
    el('h1', {}, `Teams of ${org}`),
    el('p', { class: 'muted' }, 'member: reads what the team is granted; creator: may also create repositories; admin: administers the organization.'),
    list, createForm);
  load();
}

// ------------------------------------------------------------------ account
async function accountPage() {
  const cur = el('input', { type: 'password', autocomplete: 'current-password', required: true, 'aria-label': 'Current password' });
  const next = el('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 8, 'aria-label': 'New password' });
  const tokens = el('div');
  const shown = el('div');
  const load = async () => {
    const r = await attempt(() => api('GET', 'user/tokens'));
    if (!r) return;
    tokens.replaceChildren(r.tokens.length ? el('div', { class: 'table-wrap' }, el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'Created'), el('th', {}, 'Last used'), el('th', {}, ''))),
      el('tbody', {}, r.tokens.map((t) => el('tr', {}, el('td', { class: 'name' }, t.name), el('td', {}, when(t.created)),
        el('td', {}, when(t.last_used)),
        el('td', {}, el('button', { type: 'button', class: 'danger', onclick: async () => {
          const ok = await attempt(() => api('DELETE', `user/tokens/${t.id}`), `Token ${t.name} deleted.`);
          if (ok !== undefined) load();
        } }, 'Delete'))))))) : el('p', { class: 'muted' }, 'No personal API tokens.'));
  };
  const tname = el('input', { required: true, placeholder: 'ci scripts', 'aria-label': 'Token name' });
  mount(
    el('h1', {}, `Account ${state.user.username}`),
    el('h2', {}, 'Change password'),
    el('form', {
      class: 'row',
      onsubmit: async (ev) => {
        ev.preventDefault();
        const ok = await attempt(() => api('PUT', 'user/password', { current_password: cur.value, new_password: next.value }),
          'Password changed. Other sessions, registry logins and tokens issued with the old password have stopped working.');
        cur.value = ''; next.value = '';
        if (ok !== undefined) { state.user = null; location.hash = '#/signin'; }
      },
    }, el('label', {}, 'Current password', cur), el('label', {}, 'New password (8 or more characters)', next),
    el('button', { type: 'submit', class: 'primary' }, 'Change password')),
    el('h2', {}, 'Personal API tokens'),
    el('p', { class: 'muted' }, 'For scripts that use the management API (Authorization: Bearer TOKEN). They cannot pull or push images; use a robot account for that.'),
    tokens, shown,
    el('form', {
      class: 'row',
      onsubmit: async (ev) => {
        ev.preventDefault();
        const r = await attempt(() => api('POST', 'user/tokens', { name: tname.value }));
        if (!r) return;
        tname.value = '';
        shown.replaceChildren(el('p', { class: 'warn' }, 'Copy the token now; it is not shown again: ',
          el('code', { class: 'token' }, r.token), ' ', copyButton('Copy', () => r.token)));
        load();
      },
    }, el('label', {}, 'Name', tname), el('button', { type: 'submit' }, 'Create token')));
  load();
}

// ------------------------------------------------------------------ start
window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', async () => {
  const cfg = await api('GET', 'config').catch(() => null);
  if (cfg) state.config = cfg;
  route();
});
