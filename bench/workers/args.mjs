// Tiny `--key value` parser for workers; flags without a value are true.
export function args(argv = process.argv.slice(2)) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) continue;
    const key = a.slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) out[key] = true;
    else {
      out[key] = next;
      i++;
    }
  }
  return out;
}

export function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/** Resolve when a line arrives on stdin (the start barrier used to line up several processes). */
export function stdinLine() {
  return new Promise((resolve) => {
    let buf = "";
    const onData = (d) => {
      buf += d.toString();
      if (buf.includes("\n")) {
        process.stdin.off("data", onData);
        process.stdin.pause();
        resolve(buf.split("\n")[0]);
      }
    };
    process.stdin.on("data", onData);
    process.stdin.resume();
  });
}

export function nowMs() {
  return performance.timeOrigin + performance.now();
}

export function lat(msList) {
  const s = Float64Array.from(msList).sort();
  const p = (q) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? Number.NaN;
  return { p50_us: Math.round(p(0.5) * 1000), p99_us: Math.round(p(0.99) * 1000) };
}
