// ort_bench.js — times one ONNX model with ONNX Runtime's CPU library (npm's onnxruntime-node), for
// tools/bench.py. Prints one line: "ort: N runs, median X ms, min Y ms".
//
//   node tools/ort_bench.js MODEL.onnx THREADS RUNS D0,D1,...      (the input's shape)
//
// NODE_PATH must reach onnxruntime-node (bench.py installs it into build/ort/node_modules).
'use strict';
const ort = require('onnxruntime-node');

async function main() {
    const [model, threads, runs, shape] = process.argv.slice(2);
    const dims = shape.split(',').map(Number);
    const session = await ort.InferenceSession.create(model, {
        intraOpNumThreads: Number(threads),
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
    });
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++)
        data[i] = ((i * 2654435761) % 65536) / 32768 - 1;   // deterministic, in [-1, 1)
    const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, dims)};
    await session.run(feeds);   // warm-up
    const ms = [];
    for (let r = 0; r < Number(runs); r++) {
        const t0 = process.hrtime.bigint();
        await session.run(feeds);
        ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    ms.sort((a, b) => a - b);
    const mid = ms.length >> 1, median = ms.length % 2 ? ms[mid] : (ms[mid - 1] + ms[mid]) / 2;
    console.log(`ort: ${ms.length} runs, median ${median.toFixed(3)} ms, min ${ms[0].toFixed(3)} ms`);
}

main().catch((e) => {
    console.error(`ort_bench: ${e.message}`);
    process.exit(1);
});
