// Load test for `unicorn serve` on loopback: N concurrent streaming clients for a fixed time,
// in rounds. Every answer is checked (the demo model answers greedily, so batching must not
// change a word); after each round the server's live heap (unicorn_heap_allocated_bytes in
// /metrics, less unicorn_buffer_cache_bytes: the free activation blocks the CPU backend keeps,
// which grow whenever a batch of a new shape comes, later on a loaded machine) and RSS are
// sampled and must stay flat: the lower of the last two samples within a margin of the second
// (the first round is the warm-up: the 32 slots' buffers and the allocator's arenas reach their
// size there). The heap is the leak check proper; RSS also moves with the allocator's caching,
// so its margin is wider.
//
//   node bench/server_load.mjs [--clients 32] [--seconds 60] [--rounds 6] [--heap-margin 0.1] [--rss-margin 0.3]
//
// Environment: UNICORN_BASE_URL (http://127.0.0.1:PORT, loopback only), UNICORN_REPO_ROOT,
// UNICORN_SERVER_PID (for /proc/PID/status). Prints the figures and one "RESULT {json}" line;
// exits 1 on any failed request or heap or RSS growth over its margin, 2 on its own time limit.
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

const { values: opts } = parseArgs({
  options: {
    clients: { type: "string", default: "32" },
    seconds: { type: "string", default: "60" },
    rounds: { type: "string", default: "6" },
    "heap-margin": { type: "string", default: "0.1" },
    "rss-margin": { type: "string", default: "0.3" },
    "max-tokens": { type: "string", default: "64" },
  },
});
const clients = Number(opts.clients);
const seconds = Number(opts.seconds);
const rounds = Number(opts.rounds);
const rssMargin = Number(opts["rss-margin"]);
const heapMargin = Number(opts["heap-margin"]);
const maxTokens = Number(opts["max-tokens"]);

const baseURL = process.env.UNICORN_BASE_URL;
const root = process.env.UNICORN_REPO_ROOT ?? ".";
const pid = process.env.UNICORN_SERVER_PID;
const url = new URL(baseURL);
if (!["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) {
  console.error(`refusing to load ${baseURL}: loopback addresses only`);
  process.exit(2);
}
// Bounded in time whatever happens: the rounds, plus a minute for the last requests.
setTimeout(() => {
  console.error("server_load: time limit reached");
  process.exit(2);
}, (seconds + 60) * 1000).unref();

const uri = (rel, type) => `data:${type};base64,` + readFileSync(path.join(root, rel)).toString("base64");
const image = (u, q) => [{ role: "user", content: [{ type: "image_url", image_url: { url: u } }, { type: "text", text: q }] }];
const TRIANGLE = uri("examples/blue_triangle.png", "image/png");
const CIRCLE = uri("examples/red_circle.jpg", "image/jpeg");
const KINDS = [
  { messages: [{ role: "user", content: "Hello!" }], want: "Hello! Show me a picture of a shape and ask me about it." },
  { messages: image(TRIANGLE, "What do you see?"), want: "A blue triangle in the top right." },
  { messages: image(CIRCLE, "What color is the shape?"), want: "The shape is red." },
  { messages: image(CIRCLE, "Where is it?"), want: "It is in the bottom left." },
];

function rssKb() {
  if (!pid) return NaN;
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m);
  return m ? Number(m[1]) : NaN;
}

// The server's live heap in kB outside the CPU backend's buffer cache, from its /metrics.
async function heapKb() {
  const text = await (await fetch(baseURL + "/metrics")).text();
  const heap = text.match(/^unicorn_heap_allocated_bytes (\S+)$/m);
  const cached = text.match(/^unicorn_buffer_cache_bytes (\S+)$/m);
  return heap && cached ? Math.round((Number(heap[1]) - Number(cached[1])) / 1024) : NaN;
}

// One streamed chat request; resolves to its timings, or throws.
async function request(kind) {
  const t0 = performance.now();
  const res = await fetch(baseURL + "/v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model: "demo", messages: kind.messages, stream: true, max_tokens: maxTokens,
                           stream_options: { include_usage: true } }),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buffer = "", text = "", ttft = NaN, usage = null, done = false;
  for await (const part of res.body) {
    buffer += decoder.decode(part, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const data = buffer.slice(0, end).replace(/^data: /, "");
      buffer = buffer.slice(end + 2);
      if (data === "[DONE]") { done = true; continue; }
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      const piece = chunk.choices[0]?.delta?.content;
      if (piece) {
        if (Number.isNaN(ttft)) ttft = performance.now() - t0;
        text += piece;
      }
      if (chunk.usage) usage = chunk.usage;
    }
  }
  if (!done) throw new Error("the stream ended without [DONE]");
  if (text !== kind.want) throw new Error(`wrong answer ${JSON.stringify(text)}, expected ${JSON.stringify(kind.want)}`);
  if (!usage) throw new Error("no usage chunk");
  return { ttft, latency: performance.now() - t0, tokens: usage.completion_tokens };
}

const quantile = (xs, q) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

const results = [];
const failures = [];
const rss = [];
const heap = [];
const roundLog = [];
const start = performance.now();
let next = 0;
for (let round = 0; round < rounds; ++round) {
  const roundEnd = start + ((round + 1) * seconds * 1000) / rounds;
  const before = results.length;
  const roundStart = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < roundEnd) {
        const kind = KINDS[next++ % KINDS.length];
        try {
          results.push(await request(kind));
        } catch (e) {
          failures.push(String(e.message ?? e));
        }
      }
    }),
  );
  const done = results.slice(before);
  const tokens = done.reduce((a, r) => a + r.tokens, 0);
  const secs = (performance.now() - roundStart) / 1000;
  rss.push(rssKb());
  heap.push(await heapKb());
  roundLog.push({ round: round + 1, requests: done.length, tokens_per_s: +(tokens / secs).toFixed(1), rss_kb: rss.at(-1),
                  heap_kb: heap.at(-1) });
  console.log(`round ${round + 1}/${rounds}: ${done.length} requests, ${(tokens / secs).toFixed(1)} tokens/s, ` +
              `heap ${heap.at(-1)} kB, RSS ${rss.at(-1)} kB, ${failures.length} failures so far`);
}
const wall = (performance.now() - start) / 1000;
const tokens = results.reduce((a, r) => a + r.tokens, 0);
const ttfts = results.map((r) => r.ttft);
const latencies = results.map((r) => r.latency);
const summary = {
  clients,
  seconds: +wall.toFixed(1),
  requests: results.length,
  failed: failures.length,
  tokens,
  tokens_per_s: +(tokens / wall).toFixed(1),
  requests_per_s: +(results.length / wall).toFixed(2),
  ttft_ms: { p50: +quantile(ttfts, 0.5).toFixed(1), p99: +quantile(ttfts, 0.99).toFixed(1) },
  latency_ms: { p50: +quantile(latencies, 0.5).toFixed(1), p99: +quantile(latencies, 0.99).toFixed(1) },
  rss_kb: { first: rss[0], baseline: rss[Math.min(1, rss.length - 1)], last: rss.at(-1), max: Math.max(...rss),
            settled: Math.min(...rss.slice(-2)), margin: rssMargin },
  heap_kb: { first: heap[0], baseline: heap[Math.min(1, heap.length - 1)], last: heap.at(-1),
             settled: Math.min(...heap.slice(-2)), margin: heapMargin },
  rounds: roundLog,
};
console.log(`${summary.requests} requests (${summary.failed} failed) in ${summary.seconds} s: ${summary.tokens_per_s} tokens/s, ` +
            `${summary.requests_per_s} requests/s; time to first token p50 ${summary.ttft_ms.p50} ms, p99 ${summary.ttft_ms.p99} ms; ` +
            `latency p50 ${summary.latency_ms.p50} ms, p99 ${summary.latency_ms.p99} ms; RSS ${rss[0]} -> ${rss.at(-1)} kB`);
console.log("RESULT " + JSON.stringify(summary));
let ok = true;
if (failures.length) {
  ok = false;
  console.error(`${failures.length} failed requests; first: ${failures.slice(0, 5).join(" | ")}`);
}
if (!results.length) {
  ok = false;
  console.error("no request completed");
}
// A leak raises every later sample; noise (one round's sample up, the next back down) does
// not raise both of the last two.
function flat(samples, margin, what) {
  const settled = Math.min(...samples.slice(-2));
  const baseline = samples[Math.min(1, samples.length - 1)];
  if (Number.isNaN(settled) || Number.isNaN(baseline)) {
    console.error(`no ${what} samples`);
    return false;
  }
  if (settled > baseline * (1 + margin)) {
    console.error(`${what} grew from ${baseline} kB after the warm-up round to ${settled} kB over the last two (margin ${margin * 100}%)`);
    return false;
  }
  return true;
}
if (!flat(heap, heapMargin, "live heap")) ok = false;
if (pid && !flat(rss, rssMargin, "RSS")) ok = false;
process.exit(ok ? 0 : 1);
