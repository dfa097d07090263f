import { request } from "node:http";
import { connect } from "node:net";

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request on its own connection (no agent: nothing kept alive between tests). */
export function http(url: string, method = "GET"): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url}: no answer in 5 s`)));
    req.on("error", reject);
    req.end();
  });
}

/** Wait until `url` answers: serve's metrics endpoint starts just after the submit socket answers. */
export async function waitForHttp(url: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await http(url);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Send raw bytes on a TCP connection; resolves with what came back once the server closed it (or `ms`). */
export function rawExchange(port: number, bytes: string | Buffer, ms = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    let got = "";
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(got);
    }, ms);
    sock.on("data", (d) => {
      got += d.toString("latin1");
    });
    sock.on("error", () => {}); // a reset after the server's answer is fine
    sock.on("close", () => {
      clearTimeout(timer);
      resolve(got);
    });
    sock.on("connect", () => sock.write(bytes));
    sock.on("timeout", () => reject(new Error("connect timeout")));
  });
}

/** Send a request, take the first chunk of the answer, then reset the connection (a client that vanishes). */
export function firstChunkThenReset(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1", () => sock.write(bytes));
    sock.once("data", (d) => {
      sock.resetAndDestroy();
      resolve(d.toString("latin1"));
    });
    sock.on("error", reject);
    sock.on("close", () => reject(new Error("closed before any answer")));
  });
}

export interface Exposition {
  /** `name{k="v",...}` (label values unescaped, in order) -> value. */
  samples: Map<string, number>;
  types: Map<string, string>;
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(${LABEL}(?:,${LABEL})*)\\})? (\\S+)$`);
const LABEL_G = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/g;

/**
 * A strict reader of Prometheus text format 0.0.4 for tests: every line is a HELP, a TYPE or a sample;
 * each family's HELP and TYPE come once, before its samples; counters end in _total; values are floats.
 * Throws on the first violation.
 */
export function parseExposition(text: string): Exposition {
  if (!text.endsWith("\n")) throw new Error("exposition must end with a line feed");
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const helped = new Set<string>();
  let current = "";
  for (const line of text.slice(0, -1).split("\n")) {
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (kind === "HELP") {
        if (helped.has(name)) throw new Error(`HELP for ${name} twice`);
        helped.add(name);
        current = name;
      } else {
        if (name !== current || types.has(name)) throw new Error(`TYPE for ${name} out of place`);
        if (rest !== "counter" && rest !== "gauge") throw new Error(`unexpected type ${rest}`);
        if ((rest === "counter") !== name.endsWith("_total")) throw new Error(`${name} is a ${rest}`);
        types.set(name, rest);
      }
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const [, name, labels, value] = m as unknown as [string, string, string | undefined, string];
    if (name !== current || !types.has(name)) throw new Error(`sample of ${name} outside its family`);
    const v = value === "+Inf" ? Infinity : value === "-Inf" ? -Infinity : Number(value);
    if (value !== "NaN" && Number.isNaN(v)) throw new Error(`bad value in ${line}`);
    const key = `${name}{${[...(labels ?? "").matchAll(LABEL_G)].map((l) => `${l[1]}="${unescapeLabel(l[2]!)}"`).join(",")}}`;
    if (samples.has(key)) throw new Error(`duplicate sample ${key}`);
    samples.set(key, v);
  }
  return { samples, types };
}

function unescapeLabel(v: string): string {
  return v.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
}
