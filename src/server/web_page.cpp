#include "server/web_page.h"

#include <string_view>

namespace unicorn::server {

namespace {

// The page. "__API_KEY_REQUIRED__" is replaced with true or false.
constexpr std::string_view kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Unicorn chat</title>
<style>
  :root { --bg: #f6f6f3; --fg: #1d1d1b; --muted: #6b6b66; --user: #dfe9f7; --bot: #ffffff; --line: #d9d9d2; --err: #b3261e; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg);
         display: flex; flex-direction: column; height: 100vh; }
  header { display: flex; align-items: center; gap: 12px; padding: 10px 16px; border-bottom: 1px solid var(--line); background: #fff; }
  header h1 { font-size: 18px; margin: 0; }
  #model { color: var(--muted); font-size: 14px; flex: 1; }
  #key-row { padding: 8px 16px; background: #fff8e1; border-bottom: 1px solid var(--line); }
  #key-row input { width: 22em; margin-left: 6px; }
  #log { flex: 1; overflow-y: auto; padding: 16px; display: flex; flex-direction: column; gap: 10px; }
  .msg { max-width: 46em; padding: 10px 14px; border-radius: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
  .msg.user { align-self: flex-end; background: var(--user); }
  .msg.assistant { align-self: flex-start; background: var(--bot); border: 1px solid var(--line); }
  .msg.failed { opacity: 0.55; }
  .msg img { display: block; max-width: 220px; max-height: 220px; border-radius: 8px; margin-bottom: 6px; }
  .msg.pending .text:empty::after { content: "…"; color: var(--muted); }
  #error { margin: 0 16px 8px; padding: 10px 14px; border-radius: 8px; background: #fdecea; color: var(--err); border: 1px solid #f5c2bd; }
  form { display: flex; gap: 8px; align-items: flex-end; padding: 12px 16px; border-top: 1px solid var(--line); background: #fff; flex-wrap: wrap; }
  textarea { flex: 1; min-width: 14em; resize: vertical; font: inherit; padding: 8px 10px; border: 1px solid var(--line); border-radius: 8px; }
  button, .file { font: inherit; padding: 8px 14px; border-radius: 8px; border: 1px solid var(--line); background: #fff; cursor: pointer; }
  button[type=submit] { background: #2f5fb3; color: #fff; border-color: #2f5fb3; }
  button:disabled { opacity: 0.5; cursor: default; }
  .file input { display: none; }
  #attachment { display: flex; align-items: center; gap: 6px; width: 100%; }
  #attachment img { max-height: 64px; border-radius: 6px; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<header>
  <h1>Unicorn</h1><span id="model"></span>
  <button id="new-chat" type="button">New chat</button>
</header>
<div id="key-row" hidden><label>API key<input id="api-key" type="password" autocomplete="off" placeholder="the server's --api-key"></label></div>
<main id="log" aria-live="polite"></main>
<div id="error" role="alert" hidden></div>
<form id="composer">
  <div id="attachment" hidden><img id="preview" alt="attached image"><span id="attachment-name"></span>
    <button id="remove-image" type="button" title="Remove the image">Remove</button></div>
  <textarea id="prompt" rows="2" placeholder="Message (Enter sends, Shift+Enter starts a new line)"></textarea>
  <label class="file" title="Attach a PNG, JPEG or WebP image">Image<input id="image" type="file" accept="image/png,image/jpeg,image/webp"></label>
  <button id="send" type="submit">Send</button>
</form>
<script>
"use strict";
const API_KEY_REQUIRED = __API_KEY_REQUIRED__;
const $ = (id) => document.getElementById(id);
let history = [];          // the conversation as OpenAI messages
let attached = null;       // the attached image as a data: URI
let reading = Promise.resolve();  // the attachment being read (sending waits for it)
let modelId = "default";
let busy = false;

if (API_KEY_REQUIRED) {
  $("key-row").hidden = false;
  $("api-key").value = sessionStorage.getItem("unicorn-api-key") || "";
  $("api-key").addEventListener("change", () => sessionStorage.setItem("unicorn-api-key", $("api-key").value.trim()));
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function loadModel() {
  fetch("/v1/models", { headers: headers() })
    .then((r) => (r.ok ? r.json() : null))
    .then((j) => { if (j && j.data && j.data.length) { modelId = j.data[0].id; $("model").textContent = modelId; } })
    .catch(() => {});
}
loadModel();
$("api-key").addEventListener("change", loadModel);

function bubble(role, text, image) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  if (image) {
    const img = document.createElement("img");
    img.src = image;
    img.alt = "image sent";
    div.appendChild(img);
  }
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  div.appendChild(body);
  $("log").appendChild(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

function clearAttachment() {
  attached = null;
  $("image").value = "";
  $("attachment").hidden = true;
  $("preview").removeAttribute("src");
}

$("image").addEventListener("change", () => {
  const file = $("image").files[0];
  if (!file) return;
  reading = new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => {
      attached = reader.result;
      $("preview").src = attached;
      $("attachment-name").textContent = file.name;
      $("attachment").hidden = false;
      resolve();
    };
    reader.onerror = () => { showError("Could not read " + file.name); resolve(); };
    reader.readAsDataURL(file);
  });
});
$("remove-image").addEventListener("click", clearAttachment);

$("new-chat").addEventListener("click", () => {
  if (busy) return;
  history = [];
  $("log").replaceChildren();
  $("error").hidden = true;
});

$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});

// Reads an OpenAI event stream, calling onDelta with each piece of content.
async function readStream(response, onDelta) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const delta = chunk.choices && chunk.choices.length ? chunk.choices[0].delta : null;
        if (delta && delta.content) onDelta(delta.content);
      }
    }
  }
}

$("composer").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (busy) return;
  await reading;
  const text = $("prompt").value.trim();
  const image = attached;
  if (!text && !image) return;
  $("error").hidden = true;
  const content = image
    ? [{ type: "image_url", image_url: { url: image } }].concat(text ? [{ type: "text", text: text }] : [])
    : text;
  const message = { role: "user", content: content };
  const userDiv = bubble("user", text, image);
  $("prompt").value = "";
  clearAttachment();
  const answerDiv = bubble("assistant", "");
  answerDiv.classList.add("pending");
  const answerText = answerDiv.querySelector(".text");
  busy = true;
  $("send").disabled = true;
  let answer = "";
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ model: modelId, messages: history.concat([message]), stream: true }),
    });
    if (!response.ok) {
      let detail = response.status + " " + response.statusText;
      try {
        const j = await response.json();
        if (j.error && j.error.message) detail = j.error.message;
      } catch (ignored) {}
      throw new Error(detail);
    }
    await readStream(response, (piece) => {
      answer += piece;
      answerText.textContent = answer;
      answerDiv.scrollIntoView({ block: "end" });
    });
    history.push(message, { role: "assistant", content: answer });
    answerDiv.classList.remove("pending");
  } catch (err) {
    answerDiv.remove();
    userDiv.classList.add("failed");
    userDiv.title = "Not sent: " + err.message;
    showError("Error: " + err.message);
  } finally {
    busy = false;
    $("send").disabled = false;
    $("prompt").focus();
  }
});
</script>
</body>
</html>
)HTML";

}  // namespace

std::string web_page_html(bool api_key_required) {
  std::string page(kPage);
  const std::string_view marker = "__API_KEY_REQUIRED__";
  page.replace(page.find(marker), marker.size(), api_key_required ? "true" : "false");
  return page;
}

}  // namespace unicorn::server
