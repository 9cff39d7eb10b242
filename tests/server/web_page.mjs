// The chat page at GET / in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is ever downloaded): a question about an attached image, a
// follow-up in the same conversation, a text-only chat, and an error shown in the page.
// Run by tests/server/server_e2e_test.cpp with UNICORN_BASE_URL and UNICORN_REPO_ROOT set.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const baseURL = process.env.UNICORN_BASE_URL;
const root = process.env.UNICORN_REPO_ROOT;
assert.ok(baseURL && root, "UNICORN_BASE_URL and UNICORN_REPO_ROOT must be set");

let profile, context, page;
const requests = [];

before(async () => {
  profile = mkdtempSync(path.join(tmpdir(), "unicorn-chromium-"));  // a new, empty --user-data-dir
  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    timeout: 60_000,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("request", (r) => {
    if (r.url().endsWith("/v1/chat/completions")) requests.push(JSON.parse(r.postData()));
  });
  await page.goto(baseURL + "/");
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

// Waits until the n-th answer bubble holds `text` and is no longer streaming.
async function answer(n, text) {
  try {
    await page.waitForFunction(
      ([n, text]) => {
        const a = document.querySelectorAll(".msg.assistant")[n];
        return a && !a.classList.contains("pending") && a.querySelector(".text").textContent === text;
      },
      [n, text],
      { timeout: 60_000 },
    );
  } catch (e) {
    const shown = await page.locator("#log").innerText();
    const error = await page.locator("#error").innerText().catch(() => "");
    assert.fail(`answer ${n} is not ${JSON.stringify(text)}; the page shows:\n${shown}\nerror: ${error}`);
  }
}

test("the page loads and names the model", async () => {
  assert.equal(await page.title(), "Unicorn chat");
  await page.waitForFunction(() => document.getElementById("model").textContent === "demo");
  assert.equal(await page.locator("#key-row").isHidden(), true, "no API key field without --api-key");
});

test("an attached image, then a follow-up question", async () => {
  await page.fill("#prompt", "What do you see?");
  await page.setInputFiles("#image", path.join(root, "examples/blue_triangle.png"));
  await page.click("#send");
  await answer(0, "A blue triangle in the top right.");
  assert.equal(await page.locator(".msg.user img").count(), 1, "the sent image is shown");
  const sent = requests.at(-1);
  assert.equal(sent.stream, true);
  assert.match(sent.messages[0].content[0].image_url.url, /^data:image\/png;base64,/);

  await page.fill("#prompt", "What shape is it?");
  await page.press("#prompt", "Enter");
  await answer(1, "It is a triangle.");
  const followUp = requests.at(-1);
  assert.equal(followUp.messages.length, 3, "the history goes with the question");
  assert.equal(followUp.messages[1].content, "A blue triangle in the top right.");
});

test("a text-only chat after New chat", async () => {
  await page.click("#new-chat");
  assert.equal(await page.locator(".msg").count(), 0);
  await page.fill("#prompt", "Hello!");
  await page.click("#send");
  await answer(0, "Hello! Show me a picture of a shape and ask me about it.");
  assert.equal(requests.at(-1).messages.length, 1);
});

test("a server error is shown, and the page keeps working", async () => {
  await page.click("#new-chat");
  await page.fill("#prompt", "What is this?");
  await page.setInputFiles("#image", { name: "fake.png", mimeType: "image/png", buffer: Buffer.from("not a picture") });
  await page.click("#send");
  await page.waitForSelector("#error:not([hidden])", { timeout: 30_000 });
  assert.match(await page.locator("#error").innerText(), /PNG, JPEG or WebP/);
  assert.equal(await page.locator(".msg.assistant").count(), 0);
  await page.fill("#prompt", "Hello!");
  await page.click("#send");
  await answer(0, "Hello! Show me a picture of a shape and ask me about it.");
  assert.equal(await page.locator("#error").isHidden(), true);
  assert.equal(requests.at(-1).messages.length, 1, "the failed turn is not in the history");
});
