// The web app's https as a browser sees it, run by tests/it/browser.rs against a real daemon with
// `web.tls = "self"`. With EXPECT=trusted, Chromium's certificate store ($HOME/.pki/nssdb) trusts
// the door's authority: plain http:// is redirected to the sign-in page over https, its cookie is
// Secure, and the certificate page offers the download. With EXPECT=refused, the store does not:
// Chromium must refuse the page as an unknown authority (nothing here ignores certificate errors).

import { TIMEOUT_MS, VIEWPORTS, expectText, containing, launch, required, screenshotBoth, step, stepReached } from './browser.mjs';

const env = {
  httpsUrl: required('HTTPS_URL').replace(/\/+$/, ''),
  expect: required('EXPECT'),
  screenshots: required('SCREENSHOTS'),
};
// The same port without TLS, as someone typing the address would reach it.
const httpUrl = env.httpsUrl.replace(/^https:/, 'http:');

async function trusted(context) {
  const page = await context.newPage();
  step(`open ${httpUrl}/login (plain http)`);
  await page.goto(`${httpUrl}/login`);
  if (page.url() !== `${env.httpsUrl}/login`) throw new Error(`expected to land on ${env.httpsUrl}/login, landed on ${page.url()}`);
  await expectText(page, 'h1', containing('sign in'), 'the sign-in page over https');
  step('the sign-in cookie is Secure');
  const cookies = await context.cookies(env.httpsUrl);
  const form = cookies.find((cookie) => cookie.name === 'facereko_form');
  if (!form || !form.secure || !form.httpOnly) throw new Error(`expected a Secure, HttpOnly facereko_form cookie; got ${JSON.stringify(cookies)}`);
  step('the certificate page, from the sign-in page');
  await page.getByRole('link', { name: "Install the door's certificate" }).click();
  await expectText(page, 'h1', containing('trust this door'), 'the certificate page');
  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Download the certificate' }).click();
  const file = await (await download).path();
  if (!file) throw new Error('the certificate download did not finish');
  await screenshotBoth(page, env.screenshots, 'certificate');
}

async function refused(context) {
  const page = await context.newPage();
  step(`open ${env.httpsUrl}/login without trusting the door`);
  const error = await page.goto(`${env.httpsUrl}/login`).then(
    () => null,
    (e) => e,
  );
  if (!error || !error.message.includes('ERR_CERT_AUTHORITY_INVALID')) {
    throw new Error(`expected Chromium to refuse an unknown authority (ERR_CERT_AUTHORITY_INVALID); got ${error ? error.message.split('\n')[0] : `the page ${page.url()}`}`);
  }
}

async function main() {
  const browser = await launch();
  try {
    const context = await browser.newContext({ viewport: VIEWPORTS.laptop, acceptDownloads: true });
    context.setDefaultTimeout(TIMEOUT_MS);
    context.setDefaultNavigationTimeout(TIMEOUT_MS);
    if (env.expect === 'trusted') await trusted(context);
    else if (env.expect === 'refused') await refused(context);
    else throw new Error(`EXPECT must be trusted or refused, not ${env.expect}`);
    console.log(`tls check (${env.expect}) passed`);
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(`tls check FAILED ${stepReached()}: ${error.message}`);
  process.exit(1);
});

