// llama.cpp's own CPU speed on a GGUF file, through node-llama-cpp's prebuilt CPU binaries
// (the package the tests use; never compiled here), measured as `unicorn bench` measures:
// ppN = N random prompt tokens evaluated into an empty sequence, tgN = N single-token decode
// steps from an empty sequence (greedy); a warm-up run of each, then REPS runs, mean ± sd.
// Usage: node bench/llamacpp_speed.mjs MODEL.gguf [PROMPT=128] [GEN=64] [THREADS=2] [REPS=3]
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, promptArg, genArg, threadsArg, repsArg] = process.argv.slice(2);
if (!modelPath) {
  console.error("usage: node bench/llamacpp_speed.mjs MODEL.gguf [PROMPT] [GEN] [THREADS] [REPS]");
  process.exit(2);
}
const nPrompt = Number(promptArg ?? 128), nGen = Number(genArg ?? 64);
const threads = Number(threadsArg ?? 2), reps = Number(repsArg ?? 3);

const llama = await getLlama({gpu: false, build: "never", maxThreads: threads, logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const context = await model.createContext({
  contextSize: Math.max(nPrompt, nGen) + 64, batchSize: Math.max(nPrompt, 1), sequences: 1,
  threads: {ideal: threads, min: threads},
});
const sequence = context.getSequence();

// The same kind of prompt as unicorn bench: ids drawn uniformly from [10, 200000).
let seed = 7;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const randomTokens = (n) => Array.from({length: n}, () => 10 + Math.floor(rand() * (200000 - 10)));

const stats = (v) => {
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1)) : 0;
  return `${m.toFixed(2)} ± ${sd.toFixed(2)}`;
};

const pp = [], tg = [];
for (let r = 0; r <= reps; ++r) {  // run 0 warms up and is dropped
  await sequence.clearHistory();
  const tokens = randomTokens(nPrompt);
  const t0 = performance.now();
  await sequence.evaluateWithoutGeneratingNewTokens(tokens);
  const s = (performance.now() - t0) / 1e3;
  if (r > 0) pp.push(nPrompt / s);
}
for (let r = 0; r <= reps; ++r) {
  await sequence.clearHistory();
  let n = 0;
  const t0 = performance.now();
  for await (const _ of sequence.evaluate(randomTokens(1), {temperature: 0})) {
    if (++n >= nGen) break;
  }
  const s = (performance.now() - t0) / 1e3;
  if (r > 0) tg.push(nGen / s);
}
console.log(`llama.cpp ${llama.llamaCppRelease.release} (node-llama-cpp ${llama.buildType} CPU build), ${modelPath}, ${threads} threads`);
console.log(`system info: ${llama.systemInfo}`);
console.log(`| test | t/s |\n| --- | ---: |\n| pp${nPrompt} | ${stats(pp)} |\n| tg${nGen} | ${stats(tg)} |`);
await context.dispose();
await model.dispose();
await llama.dispose();
