// The FaceReko web app in a real browser, as a door's administrator uses it: sign in, add a
// person with a photo and a card, watch the live history while a simulated tap is let in, disarm,
// add a passkey (Chromium's virtual authenticator), sign in with it, pass a step-up with it, sign
// out. Run by tests/it/browser.rs against a real daemon; every input comes from the environment.
//
// Exits non-zero with a message saying what was expected and what was seen on the first failure.
// Each wait is at most 15 s: the daemon runs on loopback, so a longer wait would only hide a bug.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  TIMEOUT_MS,
  VIEWPORTS,
  act,
  click,
  containing,
  describe,
  exactly,
  expectEventually,
  expectPath,
  expectText,
  field,
  fill,
  launch,
  open as openAt,
  required,
  screenshotBoth as screenshotAt,
  sleep,
  step,
  stepReached,
  watchBrowser,
} from './browser.mjs';

const HISTORY_ROWS = '#history tbody tr[data-id]';
const LIVE_CONNECT_MS = 3_000;

const open = (page, path) => openAt(page, env.baseUrl, path);
const screenshotBoth = (page, name) => screenshotAt(page, env.screenshots, name);

const env = {
  baseUrl: required('BASE_URL').replace(/\/+$/, ''),
  user: required('FACEREKO_E2E_USER'),
  password: required('FACEREKO_E2E_PASSWORD'),
  photo: required('FACEREKO_E2E_PHOTO'),
  card: required('FACEREKO_E2E_CARD'),
  person: required('FACEREKO_E2E_PERSON'),
  screenshots: required('SCREENSHOTS'),
};

/** A card UID as the door compares them: hex digits only, upper case ("04:a1:b2:c3" = "04A1B2C3"). */
const cardKey = (text) => text.replace(/[^0-9a-f]/gi, '').toUpperCase();

/** Ids of the history rows now shown, newest first. */
async function historyIds(history) {
  return history.locator(HISTORY_ROWS).evaluateAll((rows) => rows.map((row) => row.dataset.id));
}

/**
 * Marks the history page's window: a reload or navigation drops the mark, so finding it later
 * proves that rows arrived live rather than by reloading.
 */
async function markHistory(history) {
  await history.evaluate(() => {
    window.faceRekoE2eMark = true;
  });
}

async function expectNotReloaded(history) {
  const marked = await history.evaluate(() => window.faceRekoE2eMark === true).catch(() => false);
  if (!marked) throw new Error('expected the history page to update live; it reloaded or navigated instead');
}

/**
 * Waits for a row that was not among `known`, and (when `onTop`) is the newest row, whose
 * `.decision` reads `decision`; returns its id.
 */
async function expectNewHistoryRow(history, known, decision, { onTop }) {
  const where = onTop ? 'a new top row in the history' : 'a new row in the history';
  const id = await expectEventually(`${where} with decision "${decision}"`, async () => {
    const rows = await history.locator(HISTORY_ROWS).evaluateAll((rows) =>
      rows.map((row) => ({
        id: row.dataset.id,
        decision: (row.querySelector('.decision')?.textContent ?? '(no .decision cell)').replace(/\s+/g, ' ').trim(),
      })),
    );
    const fresh = rows.filter((row) => !known.includes(row.id));
    const candidates = onTop ? rows.slice(0, 1).filter((row) => !known.includes(row.id)) : fresh;
    const match = candidates.find((row) => exactly(decision)(row.decision));
    const seen = fresh.length
      ? `new rows ${JSON.stringify(fresh)} (top: ${rows[0]?.id})`
      : `no new row; ids ${JSON.stringify(rows.map((row) => row.id))}`;
    return { ok: match !== undefined, value: match?.id, seen };
  });
  await expectNotReloaded(history);
  return id;
}

const rowSelector = (id) => `#history tbody tr[data-id=${JSON.stringify(id)}]`;

async function expectThumbnailLoaded(history, id) {
  const selector = `${rowSelector(id)} img.thumb`;
  try {
    await history.waitForFunction(
      (selector) => {
        const img = document.querySelector(selector);
        return img !== null && img.complete && img.naturalWidth > 0;
      },
      selector,
      { timeout: TIMEOUT_MS, polling: 100 },
    );
  } catch {
    const src = await history.locator(selector).first().getAttribute('src', { timeout: 1000 }).catch(() => null);
    throw new Error(`expected ${selector} to load a picture (naturalWidth > 0); src was ${src ?? 'missing'}`);
  }
}

/**
 * Clicks the row's photo link and checks that what comes back is an image. The response is
 * awaited on the whole context, so the check holds whether the link opens in this tab or a new one.
 * Afterwards only the pages in `keep` stay open; the history may be showing the photo.
 */
async function expectPhotoLink(context, history, id, keep) {
  const link = history.locator(`${rowSelector(id)} a.photo`);
  await act(history, `find a.photo in history row ${id}`, () => link.waitFor());
  const href = await link.getAttribute('href');
  if (!href) throw new Error(`expected a.photo in history row ${id} to have an href; it has none`);
  const url = new URL(href, history.url()).href;
  const [response] = await Promise.all([
    context.waitForEvent('response', { predicate: (r) => r.url() === url, timeout: TIMEOUT_MS }),
    link.click(),
  ]);
  const type = response.headers()['content-type'] ?? '(none)';
  if (!response.ok() || !type.startsWith('image/')) {
    const got = `${response.status()} with content-type ${type}`;
    throw new Error(`expected the photo link ${url} to answer an image; got ${got}`);
  }
  for (const page of context.pages()) {
    if (!keep.includes(page)) await page.close();
  }
}

/**
 * Opens the history and marks it (see markHistory). A tap made while the page's live channel is
 * still connecting could be missed, so this waits for a server-sent events stream or a WebSocket
 * to open; a page that polls instead has neither, and is given LIVE_CONNECT_MS before going on.
 */
async function openLiveHistory(history) {
  let connected;
  const live = new Promise((resolve) => (connected = resolve));
  const onWebSocket = (socket) => connected(`a WebSocket to ${socket.url()}`);
  const onResponse = (response) => {
    const type = response.headers()['content-type'] ?? '';
    if (type.startsWith('text/event-stream')) connected(`server-sent events from ${response.url()}`);
  };
  history.on('websocket', onWebSocket);
  history.on('response', onResponse);
  try {
    await open(history, '/history');
    const channel = await Promise.race([live, sleep(LIVE_CONNECT_MS).then(() => null)]);
    console.log(`history is live through ${channel ?? 'polling, it seems: it opened no event stream or WebSocket'}`);
  } finally {
    history.off('websocket', onWebSocket);
    history.off('response', onResponse);
  }
  await markHistory(history);
}

async function signIn(page) {
  step('open / and expect the sign-in page');
  await page.goto(env.baseUrl + '/');
  await expectPath(page, /^\/login$/, 'a redirect to the sign-in page');
  await screenshotBoth(page, 'login');

  step(`sign in as ${env.user}`);
  await fill(page, 'Username', env.user);
  await fill(page, 'Password', env.password);
  await click(page, 'Sign in');
  await expectText(page, '#armed-state', exactly('Armed'), 'the dashboard showing the door "Armed"');
}

/** Adds the person, a face and a card; returns the person's page path. */
async function enrol(page) {
  step(`add the person "${env.person}"`);
  await act(page, 'click the nav link "People"', () => page.getByRole('link', { name: 'People', exact: true }).click());
  await expectPath(page, /^\/people$/, 'the people page');
  await fill(page, 'Name', env.person);
  await click(page, 'Add person');
  const personPath = await expectPath(page, /^\/people\/\d+$/, "the new person's page");
  await expectText(page, 'h1', containing(env.person), `a heading with the name "${env.person}"`);

  step(`upload the photo ${env.photo}`);
  await act(page, 'set the file field labelled "Photo"', () => field(page, 'Photo').setInputFiles(env.photo));
  await click(page, 'Upload photo');
  await expectText(page, '.flash', containing('Face enrolled'), 'a message that the face was enrolled');
  await expectEventually('exactly one enrolled face (#faces li)', async () => {
    const count = await page.locator('#faces li').count();
    return { ok: count === 1, seen: `${count} faces` };
  });

  step(`bind the card ${env.card}`);
  await fill(page, 'Card UID', env.card);
  await click(page, 'Bind card');
  await expectText(page, '.flash', containing('Card'), 'a message about the card');
  const listsCard = (text) => cardKey(text).includes(cardKey(env.card));
  await expectText(page, '#cards li', listsCard, `the card ${env.card} listed`);
  return personPath;
}

/** Taps the card from the dashboard's simulator, as the reader would. */
async function simulateTap(page) {
  if (new URL(page.url()).pathname !== '/') await open(page, '/');
  await fill(page, 'Card to tap', env.card);
  await click(page, 'Simulate tap');
}

async function watchGrantedTap(context, page, history) {
  step('open the live history in a second tab');
  await openLiveHistory(history);
  const known = await historyIds(history);

  step(`tap ${env.card} from the dashboard; expect a granted row in the history without reloading`);
  await simulateTap(page);
  const id = await expectNewHistoryRow(history, known, 'granted', { onTop: false });
  await expectThumbnailLoaded(history, id);
  await screenshotBoth(history, 'history');

  step("open the granted attempt's photo");
  await expectPhotoLink(context, history, id, [page, history]);
}

async function watchDisarmedTap(page, history) {
  step('disarm the door');
  if (new URL(page.url()).pathname !== '/') await open(page, '/');
  await click(page, 'Disarm');
  await expectText(page, '#armed-state', exactly('Disarmed'), 'the dashboard showing the door "Disarmed"');

  step(`tap ${env.card} again; expect a "disarmed" row on top of the history without reloading`);
  // Opened again before the tap: the photo link may have taken this tab to the photo.
  await openLiveHistory(history);
  const known = await historyIds(history);
  await simulateTap(page);
  await expectNewHistoryRow(history, known, 'disarmed', { onTop: true });
}

async function screenshotPages(page, personPath) {
  const pages = { dashboard: '/', people: '/people', person: personPath, settings: '/settings' };
  for (const [name, path] of Object.entries(pages)) {
    step(`screenshot ${name} (${path})`);
    await open(page, path);
    await screenshotBoth(page, name);
  }
}

async function signOut(context, page) {
  step('sign out; expect the sign-in page, and /history to redirect there');
  await click(page, 'Sign out');
  await expectPath(page, /^\/login$/, 'the sign-in page after signing out');
  // The raw answer, not the page a redirect ends on: it must be a redirect, not a page at all.
  const response = await context.request.get(env.baseUrl + '/history', { maxRedirects: 0 });
  const location = response.headers()['location'];
  const target = location ? new URL(location, env.baseUrl).pathname : null;
  if (response.status() < 300 || response.status() > 399 || target !== '/login') {
    const got = `${response.status()} to ${location ?? '(no Location)'}`;
    throw new Error(`expected GET /history after signing out to redirect to /login; got ${got}`);
  }
}

/**
 * Adds a passkey from the settings page with a virtual authenticator (a platform one that verifies
 * its user, as a phone's screen lock does), signs out and back in with it, then adds an account,
 * which asks for a fresh check (the door runs with web.step_up_after = "0s"), passed with it.
 */
async function passkeys(context, page) {
  step('attach a virtual authenticator to the tab (DevTools WebAuthn domain)');
  // Browsers answer WebAuthn only in the focused tab; the history tab was opened last.
  await page.bringToFront();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });

  step('add the passkey "E2E key" on the settings page');
  await open(page, '/settings');
  await fill(page, 'Name of the new passkey', 'E2E key');
  // The test's door asks for a proof every time (web.step_up_after = 0s): a passkey needs the password.
  await fill(page, 'Your password', env.password);
  await click(page, 'Add a passkey');
  await expectText(page, '.flash', containing('Added the passkey E2E key'), 'a message that the passkey was added');
  await expectText(page, '#passkey-list', containing('E2E key'), 'the passkey listed, never used');
  await expectText(page, '#passkey-list', containing('never used'), 'the passkey listed, never used');
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  if (credentials.length !== 1 || !credentials[0].isResidentCredential) {
    throw new Error(`expected one discoverable credential in the authenticator; got ${JSON.stringify(credentials)}`);
  }

  step('sign out, then sign in with the passkey alone');
  await click(page, 'Sign out');
  await expectPath(page, /^\/login$/, 'the sign-in page after signing out');
  await click(page, 'Sign in with a passkey');
  await expectText(page, '#armed-state', exactly('Disarmed'), 'the dashboard, signed in by the passkey');

  step('add a viewer account: the step-up asks, and the passkey answers');
  await open(page, '/settings');
  await fill(page, "New account's username", 'e2e-viewer');
  await fill(page, 'Their password', 'viewer-password-1');
  await fill(page, 'Their password again', 'viewer-password-1');
  await click(page, 'Add account');
  await expectText(page, 'h1', exactly('Confirm it is you'), 'the step-up page');
  await screenshotBoth(page, 'step-up');
  await click(page, 'Use a passkey instead');
  await expectText(page, '.flash', containing('Added the viewer account e2e-viewer'), 'the account added');
  await expectText(page, '#passkey-list', containing('last used'), 'the passkey listed as used');

  step('the sign-in log shows the passkey sign-in and check');
  for (const method of ['passkey', 'passkey_check']) {
    await open(page, `/sign-ins?method=${method}&outcome=succeeded`);
    await expectText(page, '#sign-in-total', exactly('1 attempt'), `one successful ${method} attempt logged`);
  }
}

async function main() {
  await mkdir(env.screenshots, { recursive: true });
  // chromium.launch gives every run a fresh, temporary user-data dir and deletes it afterwards.
  const browser = await launch();
  const pages = {};
  try {
    const context = await browser.newContext({ viewport: VIEWPORTS.laptop });
    context.setDefaultTimeout(TIMEOUT_MS);
    context.setDefaultNavigationTimeout(TIMEOUT_MS);
    pages.main = await context.newPage();
    watchBrowser(pages.main, 'main');

    await signIn(pages.main);
    const personPath = await enrol(pages.main);
    pages.history = await context.newPage();
    watchBrowser(pages.history, 'history');
    await watchGrantedTap(context, pages.main, pages.history);
    await watchDisarmedTap(pages.main, pages.history);
    await screenshotPages(pages.main, personPath);
    await passkeys(context, pages.main);
    await signOut(context, pages.main);
    console.log('door flow passed');
  } catch (error) {
    // The state of each page at the failure, for whoever reads the test's output.
    for (const [name, page] of Object.entries(pages)) {
      console.log(`at failure, ${name} page: ${await describe(page)}`);
      await page.screenshot({ path: join(env.screenshots, `failure-${name}.png`), fullPage: true }).catch(() => {});
    }
    throw error;
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(`door flow FAILED ${stepReached()}: ${error.message}`);
  process.exit(1);
});
