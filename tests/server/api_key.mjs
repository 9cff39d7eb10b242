// API key mode through the OpenAI Node SDK: the server was started with --api-key(-file);
// UNICORN_API_KEY holds the key. Run by tests/server/server_e2e_test.cpp.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";

const baseURL = process.env.UNICORN_BASE_URL + "/v1";
const key = process.env.UNICORN_API_KEY;
assert.ok(key, "UNICORN_API_KEY must be set");
const hello = { model: "demo", messages: [{ role: "user", content: "Hello!" }] };

test("the right key is accepted", async () => {
  const client = new OpenAI({ baseURL, apiKey: key, maxRetries: 0 });
  const r = await client.chat.completions.create(hello);
  assert.equal(r.choices[0].message.content, "Hello! Show me a picture of a shape and ask me about it.");
  const stream = await client.chat.completions.create({ ...hello, stream: true });
  let text = "";
  for await (const c of stream) text += c.choices[0]?.delta?.content ?? "";
  assert.equal(text, r.choices[0].message.content);
});

test("a wrong key is an AuthenticationError (401)", async () => {
  const client = new OpenAI({ baseURL, apiKey: key + "x", maxRetries: 0 });
  await assert.rejects(client.chat.completions.create(hello), (e) => {
    assert.ok(e instanceof OpenAI.AuthenticationError, String(e));
    assert.equal(e.status, 401);
    assert.equal(e.code, "invalid_api_key");
    return true;
  });
  await assert.rejects(client.models.list(), OpenAI.AuthenticationError);
  await assert.rejects(client.completions.create({ model: "demo", prompt: "Hi" }), OpenAI.AuthenticationError);
});

test("no key at all is a 401 too", async () => {
  const r = await fetch(baseURL + "/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(hello),
  });
  assert.equal(r.status, 401);
  const body = await r.json();
  assert.equal(body.error.type, "invalid_request_error");
  assert.match(body.error.message, /Authorization: Bearer/);
});
