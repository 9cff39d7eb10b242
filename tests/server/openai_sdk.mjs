// `unicorn serve` through the official OpenAI Node SDK, against the bundled demo model.
// Run by tests/server/server_e2e_test.cpp, which starts the server and sets
// UNICORN_BASE_URL (http://127.0.0.1:PORT) and UNICORN_REPO_ROOT.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import OpenAI from "openai";

const baseURL = process.env.UNICORN_BASE_URL;
const root = process.env.UNICORN_REPO_ROOT;
assert.ok(baseURL && root, "UNICORN_BASE_URL and UNICORN_REPO_ROOT must be set");

// maxRetries 0: a failure must show, not be retried into a pass.
const client = new OpenAI({ baseURL: baseURL + "/v1", apiKey: "unused", maxRetries: 0, timeout: 60_000 });
const MODEL = "demo";

const dataUri = (rel, type) => `data:${type};base64,` + readFileSync(path.join(root, rel)).toString("base64");
const TRIANGLE = dataUri("examples/blue_triangle.png", "image/png");
const CIRCLE = dataUri("examples/red_circle.jpg", "image/jpeg");
const HELLO_ANSWER = "Hello! Show me a picture of a shape and ask me about it.";

const imageMessage = (uri, text) => ({
  role: "user",
  content: [
    { type: "image_url", image_url: { url: uri } },
    { type: "text", text },
  ],
});

async function metric(name) {
  const text = await (await fetch(baseURL + "/metrics")).text();
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  assert.ok(line, `no ${name} in /metrics`);
  return Number(line.split(" ")[1]);
}

test("models lists the demo model", async () => {
  const models = await client.models.list();
  const ids = [];
  for await (const m of models) ids.push(m.id);
  assert.deepEqual(ids, [MODEL]);
  const one = await client.models.retrieve(MODEL);
  assert.equal(one.id, MODEL);
  assert.equal(one.object, "model");
});

test("plain chat", async () => {
  const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Hello!" }] });
  assert.equal(r.object, "chat.completion");
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, MODEL);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(r.choices[0].message.content, HELLO_ANSWER);
  assert.equal(r.choices[0].finish_reason, "stop");
  assert.ok(r.usage.prompt_tokens > 5, JSON.stringify(r.usage));
  assert.ok(r.usage.completion_tokens > 5);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test("streamed chat, with usage in a last chunk", async () => {
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: "Hello!" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.ok(chunks.length >= 4, `only ${chunks.length} chunks`);
  assert.equal(chunks[0].object, "chat.completion.chunk");
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  const ids = new Set(chunks.map((c) => c.id));
  assert.equal(ids.size, 1, "one id for the whole stream");
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  assert.equal(text, HELLO_ANSWER);
  const withFinish = chunks.filter((c) => c.choices[0]?.finish_reason);
  assert.equal(withFinish.length, 1);
  assert.equal(withFinish[0].choices[0].finish_reason, "stop");
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage.completion_tokens > 5 && last.usage.prompt_tokens > 5, JSON.stringify(last.usage));
  // The SDK's helper that accumulates a stream agrees.
  const runner = client.chat.completions.stream({ model: MODEL, messages: [{ role: "user", content: "Hello!" }] });
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].message.content, HELLO_ANSWER);
});

test("image input as a data URI", async () => {
  const r = await client.chat.completions.create({
    model: MODEL,
    messages: [imageMessage(TRIANGLE, "What do you see?")],
  });
  assert.equal(r.choices[0].message.content, "A blue triangle in the top right.");
  const jpeg = await client.chat.completions.create({
    model: MODEL,
    messages: [imageMessage(CIRCLE, "What do you see?")],
  });
  assert.equal(jpeg.choices[0].message.content, "A red circle in the bottom left.");
  // 16 image tokens per image in the demo model, plus the text.
  assert.ok(r.usage.prompt_tokens > 16, JSON.stringify(r.usage));
});

test("multi-turn with an image reuses the cached prompt", async () => {
  const hitsBefore = await metric("unicorn_image_cache_hits_total");
  const first = [imageMessage(TRIANGLE, "What do you see?")];
  const r1 = await client.chat.completions.create({ model: MODEL, messages: first });
  const a1 = r1.choices[0].message.content;
  assert.equal(a1, "A blue triangle in the top right.");
  const second = [...first, { role: "assistant", content: a1 }, { role: "user", content: "What shape is it?" }];
  const r2 = await client.chat.completions.create({ model: MODEL, messages: second });
  assert.equal(r2.choices[0].message.content, "It is a triangle.");
  // The first turn (image included) was not read again.
  const cached = r2.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached > 20 && cached < r2.usage.prompt_tokens, JSON.stringify(r2.usage));
  assert.ok((await metric("unicorn_image_cache_hits_total")) > hitsBefore, "the second turn's image came from the cache");
  assert.ok((await metric("unicorn_prompt_tokens_cached_total")) >= cached);
  // A third turn with a second image.
  const third = [...second, { role: "assistant", content: r2.choices[0].message.content }, imageMessage(CIRCLE, "What color is the shape?")];
  const r3 = await client.chat.completions.create({ model: MODEL, messages: third });
  assert.ok(r3.choices[0].message.content.length > 0);
  assert.ok(r3.usage.prompt_tokens_details.cached_tokens > cached);
});

test("system message, stop strings, max_tokens and sampling parameters", async () => {
  const stopped = await client.chat.completions.create({
    model: MODEL,
    messages: [imageMessage(TRIANGLE, "What do you see?")],
    stop: ["triangle"],
  });
  assert.equal(stopped.choices[0].message.content, "A blue ");
  assert.equal(stopped.choices[0].finish_reason, "stop");
  const short = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: "Hello!" }],
    max_completion_tokens: 2,
  });
  assert.equal(short.choices[0].finish_reason, "length");
  assert.equal(short.usage.completion_tokens, 2);
  const sys = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hello!" }],
    max_tokens: 30,
  });
  assert.ok(sys.choices[0].message.content.length > 0);
  // Sampling with a seed repeats itself.
  const params = {
    model: MODEL,
    messages: [{ role: "user", content: "Hello!" }],
    temperature: 1.5,
    top_p: 0.9,
    seed: 42,
    presence_penalty: 0.5,
    frequency_penalty: 0.5,
    max_tokens: 8,
  };
  const s1 = await client.chat.completions.create(params);
  const s2 = await client.chat.completions.create(params);
  assert.equal(s1.choices[0].message.content, s2.choices[0].message.content);
});

test("logprobs", async () => {
  const r = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: "Hello!" }],
    logprobs: true,
    top_logprobs: 3,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  assert.equal(content.map((t) => t.token).join(""), r.choices[0].message.content);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.deepEqual(t.bytes, [...Buffer.from(t.token, "utf8")]);
    assert.equal(t.top_logprobs.length, 3);
    assert.equal(t.top_logprobs[0].token, t.token, "greedy picks the most likely token");
    assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-5);
    assert.ok(t.top_logprobs[1].logprob <= t.top_logprobs[0].logprob);
  }
  // Streamed: logprobs ride on the content chunks.
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: "Hello!" }],
    logprobs: true,
    stream: true,
  });
  const tokens = [];
  for await (const c of stream) for (const t of c.choices[0]?.logprobs?.content ?? []) tokens.push(t.token);
  assert.equal(tokens.join(""), r.choices[0].message.content);
});

test("completions: raw text, no chat template", async () => {
  const r = await client.completions.create({ model: MODEL, prompt: "<start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n", max_tokens: 40 });
  assert.equal(r.object, "text_completion");
  assert.match(r.id, /^cmpl-/);
  // The same prompt the chat endpoint builds (BOS added by the tokenizer's config), so the same answer.
  assert.equal(r.choices[0].text, HELLO_ANSWER);
  assert.equal(r.choices[0].finish_reason, "stop");
  assert.ok(r.usage.prompt_tokens > 5);
  const lp = await client.completions.create({ model: MODEL, prompt: "The shape is", max_tokens: 3, logprobs: 2 });
  assert.equal(lp.choices[0].finish_reason, "length");
  assert.equal(lp.choices[0].logprobs.tokens.length, 3);
  assert.equal(lp.choices[0].logprobs.top_logprobs[0] && Object.keys(lp.choices[0].logprobs.top_logprobs[0]).length, 2);
  const stream = await client.completions.create({ model: MODEL, prompt: "<start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n", stream: true });
  let text = "";
  for await (const c of stream) text += c.choices[0]?.text ?? "";
  assert.equal(text, HELLO_ANSWER);
});

test("errors arrive as the SDK's error classes", async () => {
  const hello = [{ role: "user", content: "Hello!" }];
  await assert.rejects(client.chat.completions.create({ model: MODEL, messages: hello, n: 2 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError, String(e));
    assert.equal(e.status, 400);
    assert.equal(e.error.type, "invalid_request_error");
    assert.equal(e.param, "n");
    return true;
  });
  await assert.rejects(client.chat.completions.create({ model: MODEL, messages: [] }), OpenAI.BadRequestError);
  await assert.rejects(client.chat.completions.create({ model: MODEL, messages: [{ role: "wizard", content: "hi" }] }),
    (e) => e instanceof OpenAI.BadRequestError && /wizard/.test(e.message));
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: [...hello, { role: "user", content: "again" }] }),
    (e) => e instanceof OpenAI.BadRequestError && /alternate/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: MODEL, messages: hello, temperature: "hot" }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === "temperature");
  await assert.rejects(client.chat.completions.create({ model: MODEL, messages: hello, max_tokens: -1 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === "max_tokens");
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: [imageMessage("https://example.com/cat.png", "What?")] }),
    (e) => e instanceof OpenAI.BadRequestError && /remote image URLs are not fetched/.test(e.message));
  await assert.rejects(client.models.retrieve("gpt-nonexistent"), (e) => e instanceof OpenAI.NotFoundError && e.status === 404);
  await assert.rejects(client.get("/no/such/route"), (e) => e instanceof OpenAI.NotFoundError);
  // Streaming requests are checked before the stream starts: a plain 400, not a broken stream.
  await assert.rejects(client.chat.completions.create({ model: MODEL, messages: hello, stream: true, top_p: 7 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === "top_p");
  // And the server still answers.
  const r = await client.chat.completions.create({ model: MODEL, messages: hello });
  assert.equal(r.choices[0].message.content, HELLO_ANSWER);
});
