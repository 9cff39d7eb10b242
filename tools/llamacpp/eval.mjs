// Runs llama.cpp (through node-llama-cpp's prebuilt CPU binaries) on a GGUF file: tokenizes
// a text with the file's embedded vocabulary, evaluates it and continues greedily, printing
// JSON: {"prompt_ids": [...], "generated_ids": [...], "top": [[[id, p], ...] per step]}.
// Usage: node tools/llamacpp/eval.mjs MODEL.gguf TEXT_JSON [STEPS=8] [TOPK=5]
// TEXT_JSON is the text as a JSON string literal ("\"<bos>...\\n\""), so that newlines and
// trailing whitespace survive the shell.
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, textJson, stepsArg, topkArg] = process.argv.slice(2);
if (!modelPath || textJson === undefined) {
  console.error("usage: node tools/llamacpp/eval.mjs MODEL.gguf TEXT_JSON [STEPS] [TOPK]");
  process.exit(2);
}
const text = JSON.parse(textJson);
const steps = Number(stepsArg ?? 8), topk = Number(topkArg ?? 5);

// build: "never": use the prebuilt binaries, never compile llama.cpp.
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath});
const context = await model.createContext({contextSize: 512, sequences: 1});
const sequence = context.getSequence();
const promptIds = Array.from(model.tokenize(text, true));

const generated = [], top = [];
// Greedy (temperature 0); probabilities are llama.cpp's softmax over the logits.
const it = sequence.evaluateWithMetadata(promptIds, {probabilities: true}, {temperature: 0});
for await (const out of it) {
  generated.push(out.token);
  top.push([...out.probabilities.entries()].sort((a, b) => b[1] - a[1]).slice(0, topk));
  if (generated.length >= steps) break;
}
console.log(JSON.stringify({prompt_ids: promptIds, generated_ids: generated, top}));
await context.dispose();
await model.dispose();
await llama.dispose();
