// A visitor's journey in a real browser, one part per run, as tests/it/browser.rs drives it: the
// test reads the owner's mail and the visitor's text message between the parts and passes on what
// they carried. FLOW_PART says which part:
//   ring     the visitor rings on /visit from a phone
//   approve  the owner opens APPROVE_LINK (from the mail) and sends a passcode
//   enter    the visitor types PASSCODE on /door: the door opens; the same code again is refused
//   lock     five wrong passcodes lock PASSCODE, which then no longer opens
//   review   the admin sees the visit on the Visitors page and the entry in the history
//
// Exits non-zero with what was expected and what was seen on the first failure.

import { join } from 'node:path';
import {
  VIEWPORTS,
  click,
  containing,
  describe,
  expectPath,
  expectText,
  fill,
  launch,
  open as openAt,
  required,
  screenshotBoth as screenshotAt,
  step,
  stepReached,
  watchBrowser,
} from './browser.mjs';

const env = {
  baseUrl: required('BASE_URL').replace(/\/+$/, ''),
  part: required('FLOW_PART'),
  visitor: required('FACEREKO_E2E_VISITOR'),
  mobile: required('FACEREKO_E2E_MOBILE'),
  screenshots: required('SCREENSHOTS'),
};
const open = (page, path) => openAt(page, env.baseUrl, path);
const screenshotBoth = (page, name) => screenshotAt(page, env.screenshots, name);

async function ring(page) {
  step('open /visit on a phone and ring');
  await open(page, '/visit');
  await screenshotBoth(page, 'visit');
  await fill(page, 'Your name', env.visitor);
  await fill(page, 'Mobile number (with country code)', env.mobile);
  await fill(page, 'Message (optional)', 'Here to fix the boiler');
  await click(page, 'Ring');
  await expectText(page, 'h1', containing(`Thank you, ${env.visitor}`), 'the page saying the owner was told');
  await screenshotBoth(page, 'rang');
}

async function approve(page) {
  const link = required('APPROVE_LINK');
  step('open the link from the mail and send a passcode');
  const response = await page.goto(link);
  if (!response || !response.ok()) throw new Error(`expected the visit page at ${link}; got ${response?.status()}`);
  await expectText(page, 'h1', containing(env.visitor), `the visit of ${env.visitor}`);
  await expectText(page, 'dd', containing('Here to fix the boiler'), "the visitor's message");
  const photo = page.locator('img.visitor-photo');
  const loaded = await photo.evaluate((img) => img.complete && img.naturalWidth > 0).catch(() => false);
  if (!loaded) throw new Error(`expected the door camera's photo to load; the page was ${await describe(page)}`);
  await screenshotBoth(page, 'approve');
  await click(page, 'Send a passcode');
  await expectText(page, 'h1', containing('Passcode sent'), 'the passcode sent');
  await expectText(page, 'p', containing(env.mobile), 'the number it went to');
}

async function typePasscode(page, code) {
  await fill(page, 'Passcode', code);
  await click(page, 'Open');
}

async function enter(page) {
  const code = required('PASSCODE');
  step('type the passcode on /door');
  await open(page, '/door');
  await screenshotBoth(page, 'door');
  await typePasscode(page, code);
  await expectText(page, '.flash', containing(`Welcome, ${env.visitor}. The door is open.`), 'the door opening');
  await screenshotBoth(page, 'door-open');
  step('type it again: used passcodes do not open');
  await typePasscode(page, code);
  await expectText(page, '.flash', containing('already used'), 'the used passcode refused');
}

async function lock(page) {
  const code = required('PASSCODE');
  const wrong = code === '000000' ? '111111' : '000000';
  await open(page, '/door');
  for (let n = 1; n <= 4; n += 1) {
    step(`wrong passcode ${n}`);
    await typePasscode(page, wrong);
    await expectText(page, '.flash', containing('Permission denied'), `wrong passcode ${n} refused`);
  }
  step('the fifth wrong passcode locks');
  await typePasscode(page, wrong);
  await expectText(page, '.flash', containing('locked'), 'the passcodes locked');
  step('the right passcode no longer opens');
  await typePasscode(page, code);
  await expectText(page, '.flash', containing('locked'), 'the locked passcode refused');
}

async function review(page) {
  step('sign in and open the Visitors page');
  await open(page, '/login');
  await fill(page, 'Username', required('FACEREKO_E2E_USER'));
  await fill(page, 'Password', required('FACEREKO_E2E_PASSWORD'));
  await click(page, 'Sign in');
  await expectPath(page, /^\/$/, 'the dashboard');
  await open(page, '/visitors');
  const row = `table.visits tr:has-text(${JSON.stringify(env.visitor)})`;
  await expectText(page, row, containing('used'), `${env.visitor}'s visit, used`);
  await screenshotBoth(page, 'visitors');
  step('the history shows the entry with the passcode');
  await open(page, '/history');
  await expectText(page, '#history tbody tr', containing(env.visitor), `${env.visitor} in the history`);
}

const PARTS = { ring, approve, enter, lock, review };

async function main() {
  const part = PARTS[env.part];
  if (!part) throw new Error(`FLOW_PART ${env.part} is not one of ${Object.keys(PARTS).join(', ')}`);
  const browser = await launch();
  let page;
  try {
    // Visitors use phones; the owner's link is opened on one too.
    const context = await browser.newContext({ viewport: env.part === 'review' ? VIEWPORTS.laptop : VIEWPORTS.phone });
    page = await context.newPage();
    watchBrowser(page, env.part);
    await part(page);
    console.log(`visitor flow part ${env.part} passed`);
  } catch (error) {
    if (page) {
      console.log(`at failure: ${await describe(page)}`);
      await page.screenshot({ path: join(env.screenshots, `failure-${env.part}.png`), fullPage: true }).catch(() => {});
    }
    throw error;
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(`visitor flow FAILED ${stepReached()}: ${error.message}`);
  process.exit(1);
});
