// Face sign-in in a real browser over https, run by tests/it/browser.rs after the door flow has
// enrolled the person: Chromium's fake camera plays a .y4m video made from a real face picture.
// With the owner's face in the camera, the admin signs in with the password, links their account
// to the enrolled person, turns face sign-in on, signs out and signs in with the face, as a
// viewer. With a stranger's face in the camera (a second launch: the video is fixed per launch),
// the face sign-in is refused, and the admin finds both attempts in the sign-in log.

import {
  TIMEOUT_MS,
  VIEWPORTS,
  act,
  click,
  containing,
  exactly,
  expectEventually,
  expectPath,
  expectText,
  fill,
  launch,
  open as openAt,
  required,
  screenshotBoth,
  step,
  stepReached,
  watchBrowser,
} from './browser.mjs';

const env = {
  baseUrl: required('BASE_URL').replace(/\/+$/, ''),
  user: required('FACEREKO_E2E_USER'),
  password: required('FACEREKO_E2E_PASSWORD'),
  person: required('FACEREKO_E2E_PERSON'),
  ownerVideo: required('OWNER_VIDEO'),
  strangerVideo: required('STRANGER_VIDEO'),
  screenshots: required('SCREENSHOTS'),
};

const open = (page, path) => openAt(page, env.baseUrl, path);

/** Runs `flow` on a page of a Chromium whose only camera plays `video`; the page may use it. */
async function withCamera(name, video, flow) {
  const browser = await launch([
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    `--use-file-for-fake-video-capture=${video}`,
  ]);
  try {
    const context = await browser.newContext({ viewport: VIEWPORTS.laptop });
    context.setDefaultTimeout(TIMEOUT_MS);
    context.setDefaultNavigationTimeout(TIMEOUT_MS);
    const page = await context.newPage();
    watchBrowser(page, name);
    await flow(page);
  } finally {
    await browser.close();
  }
}

async function signInWithPassword(page) {
  await open(page, '/login');
  await fill(page, 'Username', env.user);
  await fill(page, 'Password', env.password);
  await click(page, 'Sign in');
  await expectPath(page, /^\/$/, 'the dashboard after signing in with the password');
}

async function signInWithFace(page) {
  await open(page, '/login');
  await fill(page, 'Username', env.user);
  await click(page, 'Sign in with your face');
}

async function owner(page) {
  step('sign in with the password; link the account to the enrolled person and turn face sign-in on');
  await signInWithPassword(page);
  await open(page, '/settings');
  const linkForm = page.locator(`form[action="/accounts/${env.user}/face"]`);
  await act(page, `choose ${env.person} for face sign-in`, () =>
    linkForm.getByLabel(`Person ${env.user} signs in as`).selectOption({ label: env.person }),
  );
  await act(page, 'save the link', () => linkForm.getByRole('button', { name: 'Save' }).click());
  await expectText(page, '.flash', containing('linked for face sign-in'), 'the link confirmed');
  await click(page, 'Turn face sign-in on');
  await expectText(page, '.flash', containing('face sign-in is on'), 'face sign-in turned on');
  await screenshotBoth(page, env.screenshots, 'face-sign-in-settings');
  await click(page, 'Sign out');
  await expectPath(page, /^\/login$/, 'the sign-in page after signing out');

  step("sign in with the owner's face from the camera");
  await signInWithFace(page);
  await expectPath(page, /^\/$/, 'the dashboard after the face sign-in');
  await expectText(page, '.who', containing('viewer'), 'signed in as a viewer although the account is an admin');
}

async function stranger(page) {
  step("a stranger's face in the camera is refused");
  await signInWithFace(page);
  await expectText(page, '#face-status', containing('not recognised'), 'the refusal under the camera');
  await expectPath(page, /^\/login$/, 'still the sign-in page');
  await screenshotBoth(page, env.screenshots, 'face-sign-in-refused');

  step('the admin finds both face attempts in the sign-in log, with their pictures');
  await signInWithPassword(page);
  await open(page, '/sign-ins?method=face');
  const outcomes = '#sign-ins tbody td[data-label="Outcome"]';
  await expectText(page, outcomes, exactly('face_not_matched'), 'the stranger in the log');
  await expectText(page, outcomes, exactly('succeeded'), "the owner's face sign-in in the log");
  await expectEventually('both faces shown', async () => {
    const loaded = await page
      .locator('#sign-ins img.face-thumb')
      .evaluateAll((images) => images.filter((image) => image.complete && image.naturalWidth > 0).length);
    return { ok: loaded >= 2, value: loaded, seen: `${loaded} pictures loaded` };
  });
  await screenshotBoth(page, env.screenshots, 'sign-in-log-faces');
}

async function main() {
  await withCamera('owner', env.ownerVideo, owner);
  await withCamera('stranger', env.strangerVideo, stranger);
  console.log('face sign-in flow passed');
}

main().catch((error) => {
  console.error(`face sign-in flow FAILED ${stepReached()}: ${error.message}`);
  process.exit(1);
});
