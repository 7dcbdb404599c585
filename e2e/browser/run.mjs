// The approval UI in a real browser: Debian's chromium (headless), driven
// by puppeteer-core over the DevTools protocol, against a running
// `agentauth dev` (cli/tests/browser.rs starts it and runs this script).
// Passkeys are CDP virtual authenticators (ctap2, internal, resident key,
// user verification), one per browser profile.
//
//   enroll from the printed link ─▶ sign in ─▶ the SDK's grant appears ─▶ approve
//     ─▶ Approved, and the SDK gets a token (agentauth dev call → HTTP 200)
//   deny with a reason ─▶ Denied
//   revoke the approved grant from its page ─▶ confirm ─▶ Revoked; History (from the server) lists both
//   a second approver, out of scope ─▶ does not see the grant; its page is refused
//   the grant changes between begin and finish ─▶ approval_challenge_mismatch shown
//   a page on another origin POSTs an approval ─▶ 403 cross_site_request, still pending
//   the session idles out ─▶ "Your session has ended" ─▶ sign in again
//   a grant whose envelope needs two approvers ─▶ Dana approves: 1/2, told she already approved
//     ─▶ a second approver sees 1/2 and approves ─▶ Approved, 2/2
//
// Every UI page: no console errors (beyond the browser's own line for an
// expected 4xx refusal), no CSP violation, and no axe-core violation.
// Screenshots of each main screen go to approval-ui/screenshots/.
//
// Environment (all required): AGENTAUTH_BIN, AGENTAUTH_DEV_STATE_DIR, KUBECONFIG,
// AGENTAUTH_UI_ORIGIN, AGENTAUTH_PROVIDER_URL, AGENTAUTH_OTHER_APPROVER,
// AGENTAUTH_SESSION_IDLE_MS, AGENTAUTH_SECOND_APPROVER, AGENTAUTH_TWO_APPROVER_ENVELOPE;
// optional AGENTAUTH_CHROMIUM (default /usr/bin/chromium).

import { execFile } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createRequire } from "node:module";

const here = dirname(fileURLToPath(import.meta.url));
const ui = join(here, "..", "..", "approval-ui");
const require = createRequire(join(ui, "package.json"));
const puppeteer = require("puppeteer-core");
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const run = promisify(execFile);

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (cli/tests/browser.rs sets it)`);
  return value;
};
const BIN = env("AGENTAUTH_BIN");
const ORIGIN = env("AGENTAUTH_UI_ORIGIN");
const PROVIDER = env("AGENTAUTH_PROVIDER_URL");
const OTHER = env("AGENTAUTH_OTHER_APPROVER");
const IDLE_MS = Number(env("AGENTAUTH_SESSION_IDLE_MS"));
const SECOND = env("AGENTAUTH_SECOND_APPROVER");
const TWO_APPROVERS = env("AGENTAUTH_TWO_APPROVER_ENVELOPE");
const DANA = "dana-fischer";
const AGENT = "agents/shopping-agent";
const SHOTS = join(ui, "screenshots");
const started = Date.now();

const results = [];
const problems = [];

/** Runs `agentauth …` (the real CLI, as a person types it); returns stdout. */
async function agentauth(...args) {
  const { stdout } = await run(BIN, args, { env: process.env, timeout: 60_000 });
  return stdout;
}

let openPages = [];

async function scenario(name, body) {
  const t = Date.now();
  try {
    await body();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${Date.now() - t} ms)`);
  } catch (error) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name} (${Date.now() - t} ms)\n     ${error?.stack ?? error}`);
    // What the pages showed, for the person reading the failure.
    for (const [i, p] of openPages.entries()) {
      const file = join(tmpdir(), `agentauth-e2e-failure-${results.length}-${i}.png`);
      await p.screenshot({ path: file, fullPage: true }).catch(() => undefined);
      console.log(`     page ${p.url()} → ${file}`);
    }
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** A fresh browser profile with its own virtual passkey authenticator. */
async function profile(browser, label) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport({ width: 1100, height: 820 });
  const cdp = await page.createCDPSession();
  await cdp.send("WebAuthn.enable");
  await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  page.setDefaultTimeout(10_000);
  watch(page, label);
  openPages.push(page);
  return { context, page };
}

/** Console errors, page errors and CSP violations of a UI page. */
function watch(page, label) {
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = message.text();
    // The browser logs every 4xx answer itself; the UI shows these refusals.
    if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(text)) return;
    problems.push(`${label}: console error: ${text}`);
  });
  page.on("pageerror", (error) => problems.push(`${label}: page error: ${error.message}`));
  page.evaluateOnNewDocument(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
}

/** axe-core on the page as it is (injected over CDP: the page's CSP forbids inline script). */
async function axe(page, label) {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await globalThis.axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  });
  for (const v of violations) problems.push(`${label}: axe: ${v}`);
}

async function shot(page, name, { phone = false } = {}) {
  if (phone) await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 1 });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  if (phone) await page.setViewport({ width: 1100, height: 820 });
}

const text = (page, selector, timeout = 10_000) =>
  page.waitForSelector(selector, { timeout }).then((h) => h.evaluate((e) => e.textContent ?? ""));

async function waitForText(page, selector, want, timeout = 12_000) {
  await page.waitForFunction(
    (s, w) => [...document.querySelectorAll(s)].some((e) => (e.textContent ?? "").includes(w)),
    { timeout },
    selector,
    want,
  );
}

async function enrollLink(approver) {
  const out = await agentauth("approver", "enroll-token", approver, "--public-url", ORIGIN, "--ttl", "10m");
  const link = out.match(/^enroll at: (\S+)$/m)?.[1];
  check(link?.startsWith(`${ORIGIN}/approvals/enroll?approver=${approver}#token=`), `no enrollment link in:\n${out}`);
  return link;
}

async function enroll(page, approver, label) {
  await page.goto(await enrollLink(approver), { waitUntil: "networkidle0" });
  await page.waitForSelector("text/Create passkey");
  if (label) {
    await axe(page, `${label} enroll`);
    await shot(page, "enroll");
  }
  await page.click("button[type=submit]");
  await waitForText(page, ".success", "Your passkey is ready");
  check(!page.url().includes("token="), `the token stays in the address bar: ${page.url()}`);
}

async function signIn(page, approver) {
  await page.goto(`${ORIGIN}/approvals/`, { waitUntil: "networkidle0" });
  await page.waitForSelector("#approver");
  await page.$eval("#approver", (e) => {
    e.value = "";
  });
  await page.type("#approver", approver);
  await page.keyboard.press("Enter"); // the keyboard alone signs in
  await page.waitForSelector("#pending-title", { timeout: 10_000 });
}

async function request(capability, envelope = "shopping-budget") {
  const out = await agentauth("dev", "request", AGENT, "--capability", capability, "--envelope", envelope);
  const grant = out.trim().split("\n").pop();
  check(/^agents\/[a-z0-9-]+$/.test(grant), `no grant reference in: ${out}`);
  return grant;
}

const grantUrl = (ref) => `${ORIGIN}/approvals/grants/${ref}`;

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const browser = await puppeteer.launch({
    executablePath: process.env.AGENTAUTH_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run", "--disable-gpu"],
  });
  const deadline = setTimeout(() => {
    console.log("FAIL the browser run took longer than 130 s");
    process.exit(1);
  }, 130_000);
  try {
    await agentauth("dev", "agent-key", AGENT);
    const dana = await profile(browser, "dana");
    const page = dana.page;
    let approved, denied, changing;

    await scenario("enroll from the printed link, then sign in", async () => {
      await enroll(page, DANA, "dana");
      await shot(page, "enrolled");
      await page.click("a.button");
      await page.waitForSelector("#approver");
      check((await page.$eval("#approver", (e) => e.value)) === DANA, "the sign-in form forgot the approver");
      await axe(page, "sign-in");
      await shot(page, "sign-in");
      await page.focus("#approver");
      await page.keyboard.press("Enter");
      await page.waitForSelector("#pending-title");
      await text(page, "[data-testid=empty]");
      await axe(page, "empty list");
      await shot(page, "pending-empty");
    });

    await scenario("a grant requested by the SDK appears; approving it lets the SDK get a token", async () => {
      approved = await request("read:catalog/**");
      await page.waitForSelector(`[data-grant="${approved}"]`, { timeout: 15_000 });
      await axe(page, "pending list");
      await shot(page, "pending");
      await page.click(`[data-grant="${approved}"] h2 a`);
      await page.waitForSelector("[data-testid=fingerprint]");
      check((await text(page, "[data-testid=fingerprint]")).length >= 43, "no agent key fingerprint shown");
      await waitForText(page, ".capabilities", "Read catalog and everything under it");
      await waitForText(page, ".limits", "At most 50.00 EUR per transaction");
      await axe(page, "grant");
      await shot(page, "grant");
      await shot(page, "grant-phone", { phone: true });
      await page.click("text/Approve with passkey");
      await waitForText(page, "[data-testid=decided]", "Approved.");
      await waitForText(page, "[data-testid=phase]", "Approved", 15_000);
      check(!(await page.$("text/Approve with passkey")), "an approved grant offers Approve again");
      await shot(page, "approved");
      const call = await agentauth("dev", "call", AGENT, "GET", `${PROVIDER}/catalog/paper`);
      check(call.includes("-> HTTP 200"), `the SDK's call was not allowed:\n${call}`);
    });

    await scenario("deny with a reason", async () => {
      denied = await request("read:orders/**");
      await page.goto(grantUrl(denied), { waitUntil: "networkidle0" });
      await page.waitForSelector("#deny-reason");
      await page.click("text/Deny with passkey");
      check((await page.$eval("#deny-reason", (e) => e.getAttribute("aria-invalid"))) === "true", "a denial without a reason was not stopped");
      await page.type("#deny-reason", "orders are out of scope for this agent");
      await page.click("text/Deny with passkey");
      await waitForText(page, "[data-testid=decided]", "orders are out of scope for this agent");
      await waitForText(page, "[data-testid=phase]", "Denied", 15_000);
      await axe(page, "denied");
      await shot(page, "denied");
    });

    await scenario("revoke an approved grant from its page (with confirmation)", async () => {
      // History comes from the server: both decisions, newest first, each linking to its grant.
      await page.click("nav a[href='/approvals/history']");
      await page.waitForSelector(`[data-history="${denied}"]`);
      await page.waitForSelector(`[data-history="${approved}"]`);
      const order = await page.$$eval("[data-history]", (rows) => rows.map((r) => r.getAttribute("data-history")));
      check(order.indexOf(denied) < order.indexOf(approved), `History is not newest first: ${order}`);
      await waitForText(page, `[data-history="${denied}"]`, "orders are out of scope for this agent");
      await axe(page, "history");
      await shot(page, "history");
      await page.click(`[data-history="${approved}"] a`);
      await waitForText(page, "[data-testid=phase]", "Approved");
      await page.click(".revoke button.danger");
      await page.waitForSelector("[data-testid=revoke-confirm]");
      check(
        (await page.evaluate(() => document.activeElement?.textContent)) === "Yes, revoke",
        "the confirm step does not take the focus",
      );
      await axe(page, "revoke confirmation");
      await shot(page, "revoke-confirm");
      await page.click("text/Yes, revoke");
      await waitForText(page, "[data-testid=revoked]", "Revoked.");
      await waitForText(page, "[data-testid=phase]", "Revoked", 15_000);
      check(!(await page.$("[data-testid=revoke-confirm]")), "a revoked grant still offers Revoke");
      await axe(page, "revoked");
      await shot(page, "revoked");
      const call = await agentauth("dev", "call", AGENT, "GET", `${PROVIDER}/catalog/paper`).catch((e) => e.stdout ?? String(e));
      check(!call.includes("-> HTTP 200"), `the SDK's call is still allowed after revocation:\n${call}`);
      await page.click("nav a[href='/approvals/history']");
      await waitForText(page, `[data-history="${approved}"]`, "Revoked");
      await page.goto(`${ORIGIN}/approvals/`, { waitUntil: "networkidle0" });
    });

    await scenario("a second approver out of scope does not see the grant", async () => {
      changing = await request("read:catalog/paper/*");
      await page.waitForSelector(`[data-grant="${changing}"]`, { timeout: 15_000 });
      const other = await profile(browser, "other approver");
      await enroll(other.page, OTHER);
      await signIn(other.page, OTHER);
      await text(other.page, "[data-testid=empty]");
      check(!(await other.page.$(`[data-grant="${changing}"]`)), "the out-of-scope approver sees the grant");
      await other.page.goto(grantUrl(changing), { waitUntil: "networkidle0" });
      await waitForText(other.page, "[role=alert]", "approver_out_of_scope");
      await axe(other.page, "out of scope");
      await shot(other.page, "out-of-scope");
      await other.context.close();
    });

    await scenario("a grant changed while its page is open is refused (approval_challenge_mismatch)", async () => {
      await page.goto(grantUrl(changing), { waitUntil: "networkidle0" });
      await page.waitForSelector("[data-testid=fingerprint]");
      const before = await text(page, "[data-testid=fingerprint]");
      // Between the ceremony's begin and finish, the agent gets a new key:
      // the signed challenge no longer binds what would be enforced.
      await page.setRequestInterception(true);
      const onRequest = async (req) => {
        if (req.url().endsWith("/approve/finish")) {
          await agentauth("dev", "agent-key", AGENT);
        }
        await req.continue();
      };
      page.on("request", onRequest);
      await page.click("text/Approve with passkey");
      await waitForText(page, "[role=alert]", "approval_challenge_mismatch", 20_000);
      page.off("request", onRequest);
      await page.setRequestInterception(false);
      await waitForText(page, "[data-testid=phase]", "Pending");
      await page.waitForFunction(
        (old) => document.querySelector("[data-testid=fingerprint]")?.textContent !== old,
        { timeout: 10_000 },
        before,
      );
      await axe(page, "changed");
      await shot(page, "changed");
    });

    await scenario("an approval attempted from a page on another origin is refused", async () => {
      const attacker = createServer((_, res) => {
        res.writeHead(200, { "Content-Type": "text/html" });
        res.end(`<!doctype html><title>prize</title><script>
          fetch(${JSON.stringify(`${ORIGIN}/approvals/api/grants/${changing}/approve/begin`)},
                {method: "POST", credentials: "include", headers: {"Content-Type": "text/plain"}, body: "{}"})
            .catch(() => {});</script>`);
      });
      await new Promise((ok) => attacker.listen(0, "127.0.0.1", ok));
      const evil = await dana.context.newPage();
      try {
        // The browser blocks the answer (no CORS headers), so puppeteer sees
        // no response; the raw status the server sent is in CDP's
        // responseReceivedExtraInfo for that request.
        const cdp = await evil.createCDPSession();
        await cdp.send("Network.enable");
        const status = new Promise((resolve, reject) => {
          let id = null;
          const early = new Map();
          cdp.on("Network.requestWillBeSent", (e) => {
            if (e.request.url.endsWith("/approve/begin")) {
              id = e.requestId;
              if (early.has(id)) resolve(early.get(id));
            }
          });
          cdp.on("Network.responseReceivedExtraInfo", (e) => {
            if (e.requestId === id) resolve(e.statusCode);
            else early.set(e.requestId, e.statusCode);
          });
          setTimeout(() => reject(new Error("the cross-origin POST got no answer within 10 s")), 10_000);
        });
        await evil.goto(`http://127.0.0.1:${attacker.address().port}/`);
        const code = await status;
        check(code === 403, `the cross-origin POST got HTTP ${code}`);
        // Still pending, as Dana's own page reads it.
        await page.goto(grantUrl(changing), { waitUntil: "networkidle0" });
        await waitForText(page, "[data-testid=phase]", "Pending");
        check(await page.$("text/Approve with passkey"), "the grant is no longer decidable");
      } finally {
        await evil.close();
        attacker.close();
      }
    });

    await scenario("an expired session says so and offers a way back in", async () => {
      // The grant page does not poll: after the idle timeout the session is gone.
      await new Promise((ok) => setTimeout(ok, IDLE_MS + 1500));
      await page.click("text/Approve with passkey");
      await waitForText(page, "[data-testid=session-ended]", "Your session has ended");
      await axe(page, "session ended");
      await shot(page, "session-ended");
      await page.click("button[type=submit]");
      await page.waitForSelector("#grant-title", { timeout: 10_000 });
    });

    await scenario("a grant that needs two approvers is approved only by the second", async () => {
      const two = await request("read:catalog/**", TWO_APPROVERS);
      await page.goto(`${ORIGIN}/approvals/`, { waitUntil: "networkidle0" });
      await waitForText(page, `[data-grant="${two}"] [data-testid=progress]`, "0/2 approved", 15_000);
      await page.goto(grantUrl(two), { waitUntil: "networkidle0" });
      await page.waitForSelector("[data-testid=fingerprint]");
      await page.click("text/Approve with passkey");
      await waitForText(page, "[data-testid=decided]", "Your approval is recorded (1/2 approved)");
      await waitForText(page, "[data-testid=already-decided]", "You already approved this grant");
      await waitForText(page, "[data-testid=phase]", "Pending");
      check(!(await page.$("text/Approve with passkey")), "the first approver is offered a second approval");
      await axe(page, "one of two");
      await shot(page, "one-of-two");
      const second = await profile(browser, "second approver");
      await enroll(second.page, SECOND);
      await signIn(second.page, SECOND);
      await waitForText(second.page, `[data-grant="${two}"] [data-testid=progress]`, `1/2 approved (${DANA})`, 15_000);
      await second.page.click(`[data-grant="${two}"] h2 a`);
      await second.page.waitForSelector("[data-testid=fingerprint]");
      await second.page.click("text/Approve with passkey");
      await waitForText(second.page, "[data-testid=decided]", "Approved.");
      await waitForText(second.page, "[data-testid=phase]", "Approved", 15_000);
      await waitForText(second.page, "[data-testid=progress]", "2/2 approved");
      await axe(second.page, "two of two");
      await second.context.close();
    });

    await dana.context.close();
  } finally {
    clearTimeout(deadline);
    await browser.close();
  }

  results.push({ name: "no console errors, CSP violations or axe-core violations", ok: problems.length === 0 });
  for (const p of problems) console.log(`     ${p}`);
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  console.log(`browser e2e: ${(Date.now() - started) / 1000}s, screenshots in ${SHOTS}`);
  console.log(`browser e2e scenarios: ${passed} ok, ${failed} not ok`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((error) => {
  console.log(`FAIL ${error?.stack ?? error}`);
  process.exit(1);
});
