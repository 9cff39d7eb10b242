#!/usr/bin/env bash
# unicorn serve on the GPU (CUDA graphs, batched decode): 8 image questions at once to the
# demo model, each answer printed. Run from the repository root after bench/gpu_session.sh
# unpacked the bundle into /tmp/u; writes $OUT/serve.log.
set -uo pipefail
OUT=${OUT:-out}
U=/tmp/u/unicorn
$U serve -m models/demo --device cuda --parallel 8 --port 8091 > "$OUT/serve.log" 2>&1 &
server=$!
for _ in $(seq 60); do curl -s http://127.0.0.1:8091/health > /dev/null 2>&1 && break; sleep 1; done
ask() {
  local img=$1 mime=$2 q=$3
  local body='{"model":"demo","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:'$mime';base64,'$(base64 -w0 "$img")'"}},{"type":"text","text":"'$q'"}]}]}'
  echo "$img | $q -> $(curl -s http://127.0.0.1:8091/v1/chat/completions -H 'Content-Type: application/json' -d "$body" | grep -o '"content":"[^"]*"')"
}
pids=()
for pair in "examples/blue_triangle.png image/png" "examples/red_circle.jpg image/jpeg"; do
  set -- $pair
  for q in "What do you see?" "What color is the shape?" "What shape is it?" "Where is the shape?"; do
    ask "$1" "$2" "$q" &
    pids+=($!)
  done
done
wait "${pids[@]}"
kill $server
