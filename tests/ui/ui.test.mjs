// End-to-end tests of wharf's web UI: Playwright (playwright-core) driving
// Debian's chromium against a live wharf on loopback, with real skopeo and a
// real Docker engine. Started by tests/ui/run.sh, which provides:
//   WHARF_URL (http://127.0.0.1:PORT), WHARF_PORT, ADMIN_PASSWORD, LAYOUT
//   (an OCI layout with tags amd64/multi from tests/e2e/lib.sh), IMG_ID (what
//   the image prints), ARTIFACTS (screenshots), DOCKER_HOST, POLICY (skopeo).
// Run with node's own test runner: node --test tests/ui/ui.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const base = process.env.WHARF_URL;
const port = process.env.WHARF_PORT;
const host = new URL(base).host;
const adminPw = process.env.ADMIN_PASSWORD;
const artifacts = process.env.ARTIFACTS;
mkdirSync(artifacts, { recursive: true });

let browser;
const consoleErrors = [];

function sh(cmd, env = {}) {
  return execFileSync('bash', ['-o', 'pipefail', '-c', cmd], { env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function skopeoPush(src, dest, creds, all = false) {
  sh(`skopeo --policy "$POLICY" copy ${all ? '--all' : ''} --dest-tls-verify=false --dest-creds '${creds}' '${src}' 'docker://${host}/${dest}'`);
}
async function apiAs(user, pw, method, path, body) {
  const r = await fetch(`${base}/api/v1/${path}`, {
    method,
    headers: { Authorization: 'Basic ' + Buffer.from(`${user}:${pw}`).toString('base64'), 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function newPage(opts = {}) {
  const ctx = await browser.newContext({ viewport: opts.viewport || { width: 1280, height: 800 } });
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: opts.origin || base });
  const page = await ctx.newPage();
  const errors = opts.collectInto || consoleErrors;
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`${page.url()}: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e}`));
  page.on('dialog', (d) => { errors.push(`unexpected dialog: ${d.message()}`); d.dismiss(); });
  return page;
}
async function signIn(page, user, pw, url = base) {
  await page.goto(url + '/');
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', pw);
  await page.click('button[type=submit]');
  await page.waitForSelector('h1:text("Namespaces")');
}
async function shot(page, name) {
  await page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });
}
async function openFetch(page, repo, tag) {
  await page.goto(`${base}/#/repo/${repo}/tags`);
  await page.locator(`button[aria-label="Fetch Tag ${tag}"]`).click();
  await page.waitForSelector('#fetch-dialog[open]');
}
async function command(page) {
  await page.waitForFunction(() => document.querySelector('#fetch-command').value !== '');
  return page.inputValue('#fetch-command');
}

before(async () => {
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
});
after(async () => { await browser?.close(); });

test('sign in, create an organization, a robot and a repository, push, then the squashed command from Fetch Tag loads and runs', async () => {
  const page = await newPage();
  await page.goto(base + '/');
  await shot(page, '01-signin');
  await signIn(page, 'admin', adminPw);
  await shot(page, '02-namespaces');

  // organization
  await page.fill('input[name=org]', 'uiorg');
  await page.click('button:text("Create organization")');
  await page.waitForSelector('h1:text("uiorg")');
  // repository
  await page.fill('input[name=repository]', 'app');
  await page.click('button:text("Create repository")');
  await page.waitForSelector('td.name a:text("app")');
  await shot(page, '03-repositories');
  // robot
  await page.click('a:text("Robot accounts")');
  await page.fill('input[aria-label="Robot name"]', 'deployer');
  await page.fill('input[aria-label="Description"]', 'pulls squashed images');
  await page.click('button:text("Create robot")');
  await page.waitForSelector('td.name:text("uiorg+deployer")');
  await shot(page, '04-robots');

  // push a runnable image with skopeo
  skopeoPush(`oci:${process.env.LAYOUT}:amd64`, 'uiorg/app:v1', `admin:${adminPw}`);

  // Tags -> Fetch Tag -> Squashed Docker Image -> robot
  await openFetch(page, 'uiorg/app', 'v1');
  await page.selectOption('#fetch-format', 'squash');
  await page.selectOption('#fetch-robot', 'uiorg+deployer');
  // the robot has no read permission yet: warning with a one-click grant for admins
  await page.waitForSelector('#robot-warning');
  assert.match(await page.textContent('#robot-warning'), /no read permission/);
  await page.click('#grant-read');
  await page.waitForSelector('#robot-warning', { state: 'detached' });
  const cmd = await command(page);
  assert.match(cmd, new RegExp(`^curl -fL -u 'uiorg\\+deployer:[A-Z0-9]{64}' '${base}/c1/squash/uiorg/app/v1' \\| docker load$`));
  await page.click('#copy-command');
  await page.waitForSelector('.copied:text("Copied")');
  await shot(page, '05-fetch-tag-squashed');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied, cmd);

  // run exactly that command against the Docker engine, then the image
  const loaded = sh(copied);
  assert.match(loaded, new RegExp(`Loaded image: ${host}/uiorg/app:v1`));
  const out = sh(`docker run --rm --network none ${host}/uiorg/app:v1`);
  assert.match(out, new RegExp(`WHARF-E2E-OK ${process.env.IMG_ID} x86_64`));
});

test('by-digest pull commands name the manifest digest', async () => {
  const page = await newPage();
  await signIn(page, 'admin', adminPw);
  const tags = await apiAs('admin', adminPw, 'GET', 'repository/uiorg/app/tag/');
  const digest = tags.body.tags.find((t) => t.name === 'v1').manifest_digest;
  await openFetch(page, 'uiorg/app', 'v1');
  assert.equal(await command(page), `docker pull ${host}/uiorg/app:v1`);
  await page.selectOption('#fetch-format', 'docker-digest');
  assert.equal(await command(page), `docker pull ${host}/uiorg/app@${digest}`);
  await page.selectOption('#fetch-format', 'podman-tag');
  assert.equal(await command(page), `podman pull ${host}/uiorg/app:v1`);
  await page.selectOption('#fetch-format', 'podman-digest');
  assert.equal(await command(page), `podman pull ${host}/uiorg/app@${digest}`);
  // the digest column shows it shortened, with the full value in its title
  await page.keyboard.press('Escape');
  const code = page.locator('tr[data-tag="v1"] code');
  assert.equal(await code.getAttribute('title'), digest);
  assert.equal(await code.textContent(), digest.slice(0, 7 + 12));
});

test('a public repository gets a squashed command without credentials, and a multi-platform tag a platform choice', async () => {
  const page = await newPage();
  await signIn(page, 'admin', adminPw);
  const r = await apiAs('admin', adminPw, 'POST', 'repository', { namespace: 'uiorg', repository: 'pub', visibility: 'private' });
  assert.equal(r.status, 201);
  skopeoPush(`oci:${process.env.LAYOUT}:multi`, 'uiorg/pub:multi', `admin:${adminPw}`, true);
  // visibility through the Settings tab
  await page.goto(`${base}/#/repo/uiorg/pub/settings`);
  await page.selectOption('select[aria-label="Visibility"]', 'public');
  await page.click('button:text("Save")');
  await page.waitForSelector('.message.ok');
  await shot(page, '06-settings');
  await openFetch(page, 'uiorg/pub', 'multi');
  await page.selectOption('#fetch-format', 'squash');
  assert.equal(await page.inputValue('#fetch-platform'), 'linux/amd64');
  const cmd = await command(page);
  assert.equal(cmd, `curl -fL '${base}/c1/squash/uiorg/pub/multi?platform=linux%2Famd64' | docker load`);
  // anonymous really can fetch it
  const status = sh(`curl -s -o /dev/null -w '%{http_code}' '${base}/c1/squash/uiorg/pub/multi?platform=linux%2Famd64'`);
  assert.equal(status, '200');
  await page.selectOption('#fetch-platform', 'linux/arm64/v8');
  assert.match(await command(page), /platform=linux%2Farm64%2Fv8/);
});

// Registry calls with a token from the Docker token flow (admin's password).
async function registryToken(scope) {
  const r = await fetch(`${base}/v2/auth?service=wharf&scope=${encodeURIComponent(scope)}`, {
    headers: { Authorization: 'Basic ' + Buffer.from(`admin:${adminPw}`).toString('base64') },
  });
  assert.equal(r.status, 200);
  return (await r.json()).token;
}

test('platform values are shell-quoted in the copied command (any string pushed is safe)', async () => {
  // an index whose second entry names a platform a hostile pusher chose
  const token = await registryToken('repository:uiorg/pub:pull,push');
  const auth = { Authorization: `Bearer ${token}` };
  const accept = 'application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json';
  const child = await fetch(`${base}/v2/uiorg/pub/manifests/multi`, { headers: { ...auth, Accept: accept } });
  assert.equal(child.status, 200);
  const idx = JSON.parse(await child.text());
  const amd = idx.manifests.find((m) => m.platform && m.platform.architecture === 'amd64');
  const evil = "x';touch /tmp/wharf-ui-pwned;echo '";
  const index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [
    amd, { ...amd, platform: { os: evil, architecture: 'amd64' } }] };
  const put = await fetch(`${base}/v2/uiorg/pub/manifests/quoted`, {
    method: 'PUT', headers: { ...auth, 'Content-Type': 'application/vnd.oci.image.index.v1+json' }, body: JSON.stringify(index),
  });
  assert.equal(put.status, 201);
  const page = await newPage();
  await signIn(page, 'admin', adminPw);
  await openFetch(page, 'uiorg/pub', 'quoted');
  await page.selectOption('#fetch-format', 'squash');
  await page.selectOption('#fetch-platform', `${evil}/amd64`);
  const cmd = await command(page);
  // run the copied command with curl and docker standing in: what curl gets is the URL, nothing runs
  sh('rm -f /tmp/wharf-ui-pwned');
  const out = sh(`curl() { printf '%s\\n' "$@"; }; docker() { cat; }; ${cmd}`);
  assert.equal(out, `-fL\n${base}/c1/squash/uiorg/pub/quoted?platform=${encodeURIComponent(`${evil}/amd64`)}\n`);
  assert.equal(sh('test -e /tmp/wharf-ui-pwned && echo yes || echo no').trim(), 'no');
});

test('route segments outside the name grammar never reach an API path', async () => {
  const page = await newPage();
  await signIn(page, 'admin', adminPw);
  const asked = [];
  page.on('request', (r) => { if (r.url().includes('/api/v1/')) asked.push(new URL(r.url()).pathname); });
  for (const h of ['#/repo/../namespace/uiorg/robots/x/info', '#/repo/uiorg/%2e%2e/x/tags', '#/robots/..%2Fuser', '#/ns/UPPER']) {
    await page.goto(`${base}/${h}`);
    await page.waitForFunction(() => /no such page/.test(document.querySelector('#message').textContent));
  }
  const bad = asked.filter((p) => /robots|\.\./.test(p) || !/^\/api\/v1\/(session|config|namespaces?\b|user)/.test(p));
  assert.deepEqual(bad, [], `API paths requested from crafted links: ${asked.join(', ')}`);
});

test('a superuser disables a user on the Users page: their browser session ends at once; enabling lets them sign in again', async () => {
  const pw = 'frank-password-1';
  sh(`printf '%s\\n' '${pw}' | "$WHARF_BIN" user create frank --password-stdin --data-dir "$WHARF_DATA"`);
  const frankErrors = [];  // his 401s once disabled are expected
  const frank = await newPage({ collectInto: frankErrors });
  await signIn(frank, 'frank', pw);
  const admin = await newPage();
  await signIn(admin, 'admin', adminPw);
  await admin.click('nav a:text("Users")');
  const row = admin.locator('tr[data-user="frank"]');
  await row.waitFor();
  assert.equal(await row.locator('.status').textContent(), 'enabled');
  admin.removeAllListeners('dialog');  // this confirmation is expected: accept it
  admin.once('dialog', (d) => d.accept());
  await row.locator('button:text("Disable")').click();
  await admin.waitForFunction(() => document.querySelector('tr[data-user="frank"] .status')?.textContent === 'disabled');
  await shot(admin, '12-users-disabled');
  // frank's next page load finds no session
  await frank.goto(`${base}/#/account`);
  await frank.waitForSelector('input[name=username]');
  await frank.fill('input[name=username]', 'frank');
  await frank.fill('input[name=password]', pw);
  await frank.click('button[type=submit]');
  await frank.waitForFunction(() => /disabled/.test(document.querySelector('#message').textContent));
  await admin.locator('tr[data-user="frank"] button:text("Enable")').click();
  await admin.waitForFunction(() => document.querySelector('tr[data-user="frank"] .status')?.textContent === 'enabled');
  await signIn(frank, 'frank', pw);
});

test('a user who cannot read robot tokens gets a plain explanation', async () => {
  execFileSync(process.env.WHARF_BIN, ['user', 'create', 'reader', '--password-stdin', '--data-dir', process.env.WHARF_DATA],
    { input: 'readerpass1\n', env: process.env });
  assert.equal((await apiAs('admin', adminPw, 'PUT', 'repository/uiorg/app/permissions/user/reader', { role: 'read' })).status, 200);
  const page = await newPage();
  await signIn(page, 'reader', 'readerpass1');
  await openFetch(page, 'uiorg/app', 'v1');
  await page.selectOption('#fetch-format', 'squash');
  await page.waitForSelector('#robot-explanation');
  assert.match(await page.textContent('#robot-explanation'), /Only administrators of uiorg can read robot tokens/);
  assert.equal(await page.isDisabled('#copy-command'), true);
  // readers see no Prime button and no Settings tab
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('button[aria-label^="Prime"]').count(), 0);
  assert.equal(await page.locator('nav.tabs a:text("Settings")').count(), 0);
});

test('pushed text is shown as text: markup in descriptions never runs', async () => {
  const payload = '<img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2</script>';
  assert.equal((await apiAs('admin', adminPw, 'PUT', 'repository/uiorg/app', { description: payload })).status, 200);
  assert.equal((await apiAs('admin', adminPw, 'PUT', 'namespace/uiorg/robots/xss', { description: payload })).status, 201);
  const page = await newPage();
  await signIn(page, 'admin', adminPw);
  await page.goto(`${base}/#/repo/uiorg/app/info`);
  await page.waitForSelector('.pre');
  assert.equal(await page.textContent('.pre'), payload);
  await page.goto(`${base}/#/robots/uiorg`);
  await page.waitForSelector('td:text("uiorg+xss")');
  assert.ok((await page.content()).includes('&lt;img src=x'));
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.locator('img[src=x]').count(), 0);
  // the CSP forbids inline script and framing
  const res = await fetch(base + '/');
  const csp = res.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.match(csp, /frame-ancestors 'none'/);
});

// Pushes an image straight over the registry API (token flow) whose config
// label and manifest annotations carry `payload`.
async function pushImageWithPayload(repo, tag, payload) {
  const basic = 'Basic ' + Buffer.from(`admin:${adminPw}`).toString('base64');
  const t = await (await fetch(`${base}/v2/auth?service=wharf&scope=repository:${repo}:pull,push`, { headers: { Authorization: basic } })).json();
  const auth = { Authorization: `Bearer ${t.token}` };
  const sha = (b) => 'sha256:' + createHash('sha256').update(b).digest('hex');
  const blob = async (data) => {
    const d = sha(data);
    const r = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${d}`, { method: 'POST', body: data, headers: { ...auth, 'Content-Type': 'application/octet-stream' } });
    assert.equal(r.status, 201);
    return { digest: d, size: data.length };
  };
  const layer = Buffer.alloc(1024);  // an empty tar archive
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { evil: payload, [payload]: 'as a key' } },
    rootfs: { type: 'layers', diff_ids: [sha(layer)] } }));
  const c = await blob(config);
  const l = await blob(layer);
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...c },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l }],
    annotations: { 'org.opencontainers.image.description': payload } });
  const r = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { ...auth, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(r.status, 201);
}

test('pushed labels and annotations are shown as text', async () => {
  const payload = '<img src=x onerror="window.__xss=3;alert(3)">';
  await pushImageWithPayload('uiorg/xss', 'v1', payload);
  const page = await newPage();
  await signIn(page, 'admin', adminPw);
  await page.goto(`${base}/#/repo/uiorg/xss/tags`);
  await page.click('button[aria-label="Details of v1"]');
  await page.waitForSelector('tr[data-details="v1"]');
  const dds = await page.locator('tr[data-details="v1"] dd').allTextContents();
  assert.ok(dds.includes(payload), `labels/annotations shown: ${JSON.stringify(dds)}`);
  const dts = await page.locator('tr[data-details="v1"] dt').allTextContents();
  assert.ok(dts.includes(payload));
  await shot(page, '12-tag-details');
  assert.equal(await page.locator('img[src=x]').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
});

test('thousands of tags: the Tags tab pages and sorts', async () => {
  // one small image under 1200 tags, pushed over the registry API
  await pushImageWithPayload('uiorg/many', 'seed', 'many');
  const basic = 'Basic ' + Buffer.from(`admin:${adminPw}`).toString('base64');
  const t = await (await fetch(`${base}/v2/auth?service=wharf&scope=repository:uiorg/many:pull,push`, { headers: { Authorization: basic } })).json();
  const auth = { Authorization: `Bearer ${t.token}` };
  const m = await fetch(`${base}/v2/uiorg/many/manifests/seed`, { headers: { ...auth, Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const body = Buffer.from(await m.arrayBuffer());
  for (let start = 0; start < 1200; start += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, k) => fetch(`${base}/v2/uiorg/many/manifests/t${String(start + k).padStart(4, '0')}`, {
      method: 'PUT', body, headers: { ...auth, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    }).then((r) => assert.equal(r.status, 201))));
  }
  const page = await newPage();
  await signIn(page, 'admin', adminPw);
  await page.goto(`${base}/#/repo/uiorg/many/tags`);
  await page.waitForSelector('.pager');
  assert.match(await page.textContent('.pager'), /Page 1 of 25 \(1201 tags\)/);
  assert.equal(await page.locator('tbody tr[data-tag]').count(), 50);
  assert.equal(await page.getAttribute('tbody tr[data-tag]:first-child', 'data-tag'), 'seed');
  await page.click('.pager button:text("Next")');
  await page.waitForFunction(() => /Page 2 of 25/.test(document.querySelector('.pager').textContent));
  assert.equal(await page.getAttribute('tbody tr[data-tag]:first-child', 'data-tag'), 't0049');
  // descending by name: the last tag first
  await page.click('th button:text("Tag")');
  await page.waitForFunction(() => document.querySelector('tbody tr[data-tag]').dataset.tag === 't1199');
  assert.match(await page.textContent('.pager'), /Page 1 of 25/);
  assert.equal(await page.getAttribute('th[aria-sort="descending"] button', 'class'), 'link');
  // filtering narrows the list and the pager goes away
  await page.fill('input[aria-label="Filter tags"]', 't119');
  await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-tag]').length === 10);
  assert.equal(await page.locator('.pager').count(), 0);
});

test('teams of an organization: create a team, add and remove a member', async () => {
  execFileSync(process.env.WHARF_BIN, ['user', 'create', 'dana', '--password-stdin', '--data-dir', process.env.WHARF_DATA],
    { input: 'danapass1\n', env: process.env });
  const page = await newPage();
  await signIn(page, 'admin', adminPw);
  await page.goto(`${base}/#/teams/uiorg`);
  await page.waitForSelector('section.card h2:text("owners")');
  await page.fill('input[aria-label="Team name"]', 'deployers');
  await page.selectOption('select[aria-label="Team role"]', 'creator');
  await page.click('button:text("Create team")');
  await page.waitForSelector('section.card h2:text("deployers")');
  await page.fill('input[aria-label="Add member to deployers"]', 'dana');
  await page.locator('section.card', { hasText: 'deployers' }).locator('button:text("Add member")').click();
  await page.waitForSelector('section.card li:text("dana")');
  await shot(page, '14-teams');
  // dana, a creator now, may create repositories in uiorg
  assert.equal((await apiAs('dana', 'danapass1', 'POST', 'repository', { namespace: 'uiorg', repository: 'danas', visibility: 'private' })).status, 201);
  await page.click('button[aria-label="Remove dana from deployers"]');
  await page.waitForSelector('section.card li:text("dana")', { state: 'detached' });
  assert.equal((await apiAs('dana', 'danapass1', 'POST', 'repository', { namespace: 'uiorg', repository: 'danas2', visibility: 'private' })).status, 403);
});

test('wrong credentials and rate limiting give messages a person can act on', async () => {
  execFileSync(process.env.WHARF_BIN, ['user', 'create', 'target', '--password-stdin', '--data-dir', process.env.WHARF_DATA],
    { input: 'targetpass1\n', env: process.env });
  const page = await newPage({ collectInto: [] });  // 401/429 answers are logged by chromium by design
  await page.goto(base + '/');
  await page.fill('input[name=username]', 'target');
  await page.fill('input[name=password]', 'wrong-password');
  await page.click('button[type=submit]');
  await page.waitForSelector('#message:not([hidden])');
  assert.match(await page.textContent('#message'), /Invalid username or password/);
  for (let i = 0; i < 5; i++) {
    await page.fill('input[name=password]', 'wrong-password');
    await page.click('button[type=submit]');
    await page.waitForFunction((n) => document.querySelector('#busy').hidden, i);
  }
  await page.waitForFunction(() => /Too many failed sign-ins/.test(document.querySelector('#message').textContent));
  assert.match(await page.textContent('#message'), /Try again in \d+ seconds/);
  await shot(page, '07-rate-limited');
});

test('usable with the keyboard: the Fetch Tag dialog opens with Enter and closes with Escape', async () => {
  const page = await newPage();
  await signIn(page, 'admin', adminPw);
  await page.goto(`${base}/#/repo/uiorg/app/tags`);
  const fetchButton = page.locator('button[aria-label="Fetch Tag v1"]');
  await fetchButton.focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector('#fetch-dialog[open]');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'fetch-format');
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !document.querySelector('#fetch-dialog').open);
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Fetch Tag v1');
});

test('phone width: no page is wider than the screen', async () => {
  const page = await newPage({ viewport: { width: 390, height: 844 } });
  await signIn(page, 'admin', adminPw);
  for (const [hash, name] of [['#/', '08-phone-namespaces'], ['#/ns/uiorg', '09-phone-repositories'],
    ['#/repo/uiorg/app/tags', '10-phone-tags']]) {
    await page.goto(base + '/' + hash);
    await page.waitForFunction(() => document.querySelector('#busy').hidden && document.querySelector('main h1'));
    await page.waitForTimeout(100);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `${hash} is ${width}px wide at 390px`);
    await shot(page, name);
  }
  await page.locator('button[aria-label="Fetch Tag v1"]').click();
  await page.selectOption('#fetch-format', 'squash');
  await page.selectOption('#fetch-robot', 'uiorg+deployer');
  await command(page);
  await shot(page, '11-phone-fetch-tag');
});

test('Copy Command works on a plain-HTTP host that is not localhost (no navigator.clipboard)', async () => {
  const wb = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--host-resolver-rules=MAP wharf.test 127.0.0.1'],
  });
  try {
    const origin = `http://wharf.test:${port}`;
    const ctx = await wb.newContext({ viewport: { width: 1280, height: 800 } });
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await signIn(page, 'admin', adminPw, origin);
    assert.equal(await page.evaluate(() => window.isSecureContext), false);
    assert.equal(await page.evaluate(() => typeof navigator.clipboard), 'undefined');
    await page.goto(`${origin}/#/repo/uiorg/app/tags`);
    await page.locator('button[aria-label="Fetch Tag v1"]').click();
    await page.selectOption('#fetch-format', 'squash');
    await page.selectOption('#fetch-robot', 'uiorg+deployer');
    const cmd = await command(page);
    assert.match(cmd, new RegExp(`'http://wharf.test:${port}/c1/squash/uiorg/app/v1'`));
    await page.click('#copy-command');
    await page.waitForSelector('.copied:text("Copied")');
    // read the clipboard from a secure origin in the same browser
    const reader = await ctx.newPage();
    await reader.goto(base + '/static/app.css');
    assert.equal(await reader.evaluate(() => navigator.clipboard.readText()), cmd);
    assert.deepEqual(errors, []);
  } finally {
    await wb.close();
  }
});

// Measured, not asserted (speed belongs to benchmarks): how long each main
// page takes from navigation until its content is shown and nothing loads.
test('page load times are recorded', async () => {
  const page = await newPage();
  await signIn(page, 'admin', adminPw);
  const timings = {};
  for (const [hash, sel] of [['#/', 'h1:text("Namespaces")'], ['#/ns/uiorg', 'td.name a'],
    ['#/repo/uiorg/app/tags', 'tr[data-tag="v1"]'], ['#/repo/uiorg/app/settings', 'select[aria-label="Visibility"]'],
    ['#/robots/uiorg', 'td.name'], ['#/teams/uiorg', 'section.card']]) {
    await page.goto('about:blank');
    const t0 = Date.now();
    await page.goto(base + '/' + hash);
    await page.waitForSelector(sel);
    await page.waitForFunction(() => document.querySelector('#busy').hidden);
    timings[hash] = Date.now() - t0;
  }
  writeFileSync(`${artifacts}/page-load-ms.json`, JSON.stringify(timings, null, 2) + '\n');
  console.log('page load (ms, cold navigation to content shown):', JSON.stringify(timings));
});

test('account page: a personal API token works against the API, and a password change signs everyone out', async () => {
  execFileSync(process.env.WHARF_BIN, ['user', 'create', 'carol', '--password-stdin', '--data-dir', process.env.WHARF_DATA],
    { input: 'carolpass1\n', env: process.env });
  const page = await newPage();
  await signIn(page, 'carol', 'carolpass1');
  await page.click('a:text("Account")');
  await page.fill('input[aria-label="Token name"]', 'scripts');
  await page.click('button:text("Create token")');
  await page.waitForSelector('p.warn code.token');
  const token = await page.textContent('p.warn code.token');
  assert.match(token, /^wharf_pat_/);
  const me = await fetch(`${base}/api/v1/user/`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(me.status, 200);
  assert.equal((await me.json()).username, 'carol');
  await page.fill('input[aria-label="Current password"]', 'carolpass1');
  await page.fill('input[aria-label="New password"]', 'carolpass2');
  await page.click('button:text("Change password")');
  await page.waitForSelector('input[name=username]');
  await shot(page, '13-account');
  const old = await apiAs('carol', 'carolpass1', 'GET', 'user/');
  assert.equal(old.status, 401);
  assert.equal((await apiAs('carol', 'carolpass2', 'GET', 'user/')).status, 200);
});

test('no errors in the browser console on the pages visited', () => {
  assert.deepEqual(consoleErrors, []);
});
