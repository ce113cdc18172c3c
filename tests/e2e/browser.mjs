// What the browser tests share: Debian's Chromium launched for a closed network, waits that say
// what they expected and what they saw, and actions that describe the page when they fail.

import { join } from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
// Chromium's background connections are refused on a closed network (and slow every start), so
// everything that phones home is off; --no-sandbox because the tests may run as root.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
export const TIMEOUT_MS = 15_000;
export const VIEWPORTS = {
  phone: { width: 390, height: 844 },
  laptop: { width: 1280, height: 800 },
};

/** The value of environment variable `name`; a missing one is a broken harness, not a bug. */
export function required(name) {
  const value = process.env[name];
  if (value) return value;
  console.error(`browser flow FAILED before starting: environment variable ${name} is not set (tests/it/browser.rs sets it)`);
  process.exit(1);
}

let stepNumber = 0;

/** Numbers and prints a step of the flow. */
export function step(what) {
  stepNumber += 1;
  console.log(`step ${stepNumber}: ${what}`);
}

/** Where the flow is, for the message of a failure. */
export function stepReached() {
  return stepNumber ? `in step ${stepNumber}` : 'before the first step';
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `probe` until it returns `{ ok: true, value }`; otherwise fails after `timeoutMs` with
 * `what` and the last `seen` the probe reported. A probe that throws (e.g. while the page is
 * navigating) is retried, its message kept as what was seen.
 */
export async function expectEventually(what, probe, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let seen = 'nothing yet';
  for (;;) {
    try {
      const result = await probe();
      if (result.ok) return result.value;
      seen = result.seen;
    } catch (error) {
      seen = `an error: ${error.message.split('\n')[0]}`;
    }
    if (Date.now() > deadline) throw new Error(`expected ${what} within ${timeoutMs / 1000} s; saw ${seen}`);
    await sleep(100);
  }
}

/** Collapses runs of white space, as a reader sees the text. */
export const normalise = (text) => (text ?? '').replace(/\s+/g, ' ').trim();

export async function expectPath(page, pattern, what) {
  return expectEventually(`${what} (a path matching ${pattern})`, async () => {
    const path = new URL(page.url()).pathname;
    return { ok: pattern.test(path), value: path, seen: `${page.url()}` };
  });
}

/**
 * Waits until some element matching `selector` has text accepted by `accepts`; returns that text.
 * textContent, not innerText, so a CSS text-transform does not change what is compared.
 */
export async function expectText(page, selector, accepts, what) {
  return expectEventually(`${what} (${selector})`, async () => {
    const texts = (await page.locator(selector).allTextContents()).map(normalise);
    const match = texts.find(accepts);
    const seen = texts.length ? `${selector} reading ${JSON.stringify(texts)}` : `no ${selector} on ${page.url()}`;
    return { ok: match !== undefined, value: match, seen };
  });
}

export const exactly = (expected) => (text) => text.toLowerCase() === expected.toLowerCase();
export const containing = (expected) => (text) => text.toLowerCase().includes(expected.toLowerCase());

/** What the page offers, for failure messages: where it is, its heading, labels and buttons. */
export async function describe(page) {
  try {
    const summary = await page.evaluate(() => {
      const texts = (selector) =>
        [...document.querySelectorAll(selector)].map((e) =>
          (e.textContent || e.value || '').replace(/\s+/g, ' ').trim(),
        );
      return {
        h1: texts('h1'),
        labels: texts('label'),
        buttons: texts('button, input[type=submit]'),
        flash: texts('.flash'),
        passkeyStatus: texts('[data-passkey-status]'),
      };
    });
    return `${page.url()} ${JSON.stringify(summary)}`;
  } catch (error) {
    return `${page.url()} (not readable: ${error.message.split('\n')[0]})`;
  }
}

/** Runs a Playwright action; a failure says which control was expected and what the page had. */
export async function act(page, what, action) {
  try {
    await action();
  } catch (error) {
    throw new Error(`could not ${what}: ${error.message.split('\n')[0]}; the page was ${await describe(page)}`);
  }
}

export const field = (page, label) => page.getByLabel(label, { exact: true });
export const button = (page, name) => page.getByRole('button', { name, exact: true });

export async function fill(page, label, value) {
  await act(page, `fill the field labelled "${label}"`, () => field(page, label).fill(value));
}

export async function click(page, name) {
  await act(page, `click the button "${name}"`, () => button(page, name).click());
}

/** Opens `baseUrl + path` and expects a successful page there (not an error, not the sign-in page). */
export async function open(page, baseUrl, path) {
  const response = await page.goto(baseUrl + path);
  const landed = new URL(page.url()).pathname;
  if (!response || !response.ok() || landed !== new URL(baseUrl + path).pathname) {
    throw new Error(`expected the page ${path}; got ${response ? response.status() : 'no response'} at ${page.url()}`);
  }
}

/**
 * Full-page screenshots `<name>-phone.png` and `<name>-laptop.png`; leaves the laptop size. At
 * each size nothing may stick out to the right: a page wider than the screen scrolls sideways on
 * a phone, which a screenshot of the full page does not show.
 */
export async function screenshotBoth(page, dir, name) {
  for (const [size, viewport] of Object.entries(VIEWPORTS)) {
    await page.setViewportSize(viewport);
    await page.screenshot({ path: join(dir, `${name}-${size}.png`), fullPage: true });
    const overflow = await page.evaluate(() => {
      const width = document.documentElement.clientWidth;
      const wide = [...document.querySelectorAll('body *')].filter((el) => el.getBoundingClientRect().right > width + 1);
      return { scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 3).map((el) => el.outerHTML.slice(0, 80)) };
    });
    if (overflow.scroll > overflow.width || overflow.wide.length) {
      throw new Error(
        `expected the ${name} page to fit a ${viewport.width}-px ${size} screen; it is ${overflow.scroll} px wide ` +
          `and these stick out: ${overflow.wide.join(' | ')}`,
      );
    }
  }
}

/**
 * Browser-side errors go to our output: they often explain a failed expectation. A confirmation
 * ("Disarm the door?") is accepted, as the user who clicked would; Playwright would dismiss it.
 */
export function watchBrowser(page, name) {
  page.on('dialog', async (dialog) => {
    console.log(`browser (${name}): ${dialog.type()} "${dialog.message()}" accepted`);
    await dialog.accept();
  });
  page.on('pageerror', (error) => console.log(`browser (${name}): uncaught ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') console.log(`browser (${name}): console error ${message.text()}`);
  });
}

/**
 * A headless Chromium, with `extraArgs` (such as a fake camera's); each launch has a fresh,
 * temporary user-data dir, deleted afterwards.
 */
export function launch(extraArgs = []) {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] });
}
