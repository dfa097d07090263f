import { RestrictedError } from "./errors.js";

/** A Python token. Strings carry their decoded value; numbers their int (bigint) or float value. */
export type Token =
  | { type: "name"; value: string; line: number }
  | { type: "op"; value: string; line: number }
  | { type: "string"; value: string; bytes: boolean; line: number }
  | { type: "int"; value: bigint; line: number }
  | { type: "float"; value: number; line: number }
  | { type: "newline" | "indent" | "dedent" | "eof"; value: string; line: number };

const OPERATORS = [
  "**=",
  "//=",
  ">>=",
  "<<=",
  "...",
  "->",
  ":=",
  "**",
  "//",
  "<<",
  ">>",
  "<=",
  ">=",
  "==",
  "!=",
  "+=",
  "-=",
  "*=",
  "/=",
  "%=",
  "&=",
  "|=",
  "^=",
  "@=",
  "+",
  "-",
  "*",
  "/",
  "%",
  "@",
  "&",
  "|",
  "^",
  "~",
  "<",
  ">",
  "(",
  ")",
  "[",
  "]",
  "{",
  "}",
  ",",
  ":",
  ".",
  ";",
  "=",
];
const OPEN = new Set(["(", "[", "{"]);
const CLOSE: Record<string, string> = { ")": "(", "]": "[", "}": "{" };
const ID_START = /[\p{L}\p{Nl}_]/u;
const ID_REST = /[\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]/u;
const STRING_PREFIX = /^(?:[rRuUbBfF]|[bB][rR]|[rR][bB]|[fF][rR]|[rR][fF])?['"]/;
const NUMBER =
  /^(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:\d(?:_?\d)*)?\.?(?:\d(?:_?\d)*)?(?:[eE][+-]?\d(?:_?\d)*)?)[jJ]?/;

/** Turn Python source into tokens, with NEWLINE/INDENT/DEDENT as Python's tokenizer emits them. */
export function tokenize(src: string, file: string): Token[] {
  return new Lexer(src, file).run();
}

class Lexer {
  private pos = 0;
  private line = 1;
  private readonly out: Token[] = [];
  private readonly indents: number[] = [0];
  private readonly brackets: Array<{ ch: string; line: number }> = [];
  private atLineStart = true;

  constructor(
    private readonly src: string,
    private readonly file: string,
  ) {}

  private fail(msg: string, line = this.line): never {
    throw new RestrictedError("syntax", `${msg}`, this.file, line);
  }

  run(): Token[] {
    while (this.pos < this.src.length) {
      if (this.atLineStart && this.brackets.length === 0) {
        if (this.indentation()) continue;
      }
      this.one();
    }
    if (this.brackets.length > 0) {
      const b = this.brackets[this.brackets.length - 1]!;
      this.fail(`'${b.ch}' was never closed`, b.line);
    }
    const last = this.out[this.out.length - 1];
    if (last && last.type !== "newline" && last.type !== "dedent") this.push("newline", "");
    while (this.indents.length > 1) {
      this.indents.pop();
      this.push("dedent", "");
    }
    this.push("eof", "");
    return this.out;
  }

  private push(type: "newline" | "indent" | "dedent" | "eof", value: string): void {
    this.out.push({ type, value, line: this.line });
  }

  /** Measure a logical line's indentation; returns true when the line was blank (consumed). */
  private indentation(): boolean {
    let col = 0;
    let p = this.pos;
    for (;;) {
      const c = this.src[p];
      if (c === " ") col++;
      else if (c === "\t") col = (Math.floor(col / 8) + 1) * 8;
      else if (c === "\f") col = 0;
      else break;
      p++;
    }
    const c = this.src[p];
    if (c === undefined || c === "\n" || c === "\r" || c === "#") {
      // blank or comment-only line: no NEWLINE, no indentation change
      while (p < this.src.length && this.src[p] !== "\n") p++;
      if (p < this.src.length) {
        p++;
        this.line++;
      }
      this.pos = p;
      return true;
    }
    if (c === "\\" && (this.src[p + 1] === "\n" || this.src[p + 1] === "\r")) {
      this.fail("unexpected line continuation at the start of a line");
    }
    this.pos = p;
    this.atLineStart = false;
    const top = this.indents[this.indents.length - 1]!;
    if (col > top) {
      this.indents.push(col);
      this.push("indent", "");
    } else if (col < top) {
      while (col < this.indents[this.indents.length - 1]!) {
        this.indents.pop();
        this.push("dedent", "");
      }
      if (col !== this.indents[this.indents.length - 1])
        this.fail("unindent does not match any outer indentation level");
    }
    return false;
  }

  private one(): void {
    const src = this.src;
    const c = src[this.pos]!;
    if (c === " " || c === "\t" || c === "\f") {
      this.pos++;
      return;
    }
    if (c === "#") {
      while (this.pos < src.length && src[this.pos] !== "\n") this.pos++;
      return;
    }
    if (c === "\r" && src[this.pos + 1] === "\n") this.pos++;
    if (c === "\n" || c === "\r") {
      if (this.brackets.length === 0) this.push("newline", "");
      this.pos++;
      this.line++;
      // Inside brackets a newline is just whitespace: it neither ends the line nor starts an indent.
      this.atLineStart = this.brackets.length === 0;
      return;
    }
    if (c === "\\") {
      const n = src[this.pos + 1];
      if (n === "\n" || (n === "\r" && src[this.pos + 2] === "\n")) {
        this.pos += n === "\n" ? 2 : 3;
        this.line++;
        return;
      }
      if (n === undefined) this.fail("unexpected end of file after line continuation");
      this.fail("unexpected character after line continuation character");
    }
    const rest = src.slice(this.pos, this.pos + 4);
    if (STRING_PREFIX.test(rest)) this.string();
    else if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(src[this.pos + 1] ?? ""))) this.number();
    else if (ID_START.test(c)) this.name();
    else this.operatorOrName();
  }

  private operatorOrName(): void {
    const src = this.src;
    for (const op of OPERATORS) {
      if (src.startsWith(op, this.pos)) {
        this.operator(op);
        return;
      }
    }
    // Astral characters and anything else Python rejects.
    const cp = src.codePointAt(this.pos)!;
    if (cp > 0xffff && ID_START.test(String.fromCodePoint(cp))) {
      this.name();
      return;
    }
    this.fail(
      `invalid character ${JSON.stringify(String.fromCodePoint(cp))} (U+${cp.toString(16).padStart(4, "0")})`,
    );
  }

  private operator(op: string): void {
    if (OPEN.has(op)) {
      if (this.brackets.length >= 200) this.fail("too many nested parentheses");
      this.brackets.push({ ch: op, line: this.line });
    } else if (CLOSE[op]) {
      const b = this.brackets.pop();
      if (!b) this.fail(`unmatched '${op}'`);
      if (b.ch !== CLOSE[op])
        this.fail(`closing parenthesis '${op}' does not match opening parenthesis '${b.ch}'`);
    }
    this.out.push({ type: "op", value: op, line: this.line });
    this.pos += op.length;
  }

  private name(): void {
    const start = this.pos;
    for (;;) {
      const cp = this.src.codePointAt(this.pos);
      if (cp === undefined) break;
      const ch = String.fromCodePoint(cp);
      if (!(ID_REST.test(ch) || ID_START.test(ch))) break;
      this.pos += ch.length;
    }
    this.out.push({
      type: "name",
      value: this.src.slice(start, this.pos).normalize("NFKC"),
      line: this.line,
    });
  }

  private number(): void {
    const m = NUMBER.exec(this.src.slice(this.pos, this.pos + 400));
    const text = m?.[0] ?? "";
    if (text === "" || text === ".") this.fail("invalid number");
    const next = this.src[this.pos + text.length] ?? "";
    if (/[\p{L}\p{Nd}_]/u.test(next)) this.fail(`invalid number literal ${JSON.stringify(text + next)}`);
    if (/[jJ]$/.test(text)) {
      throw new RestrictedError("unsupported", "complex numbers are", this.file, this.line);
    }
    const clean = text.replaceAll("_", "");
    const line = this.line;
    this.pos += text.length;
    if (/^0[xXoObB]/.test(clean)) {
      this.out.push({ type: "int", value: BigInt(clean.toLowerCase()), line });
    } else if (/[.eE]/.test(clean)) {
      this.out.push({ type: "float", value: Number(clean), line });
    } else {
      if (/^0+[1-9]/.test(clean)) this.fail("leading zeros in decimal integer literals are not permitted");
      this.out.push({ type: "int", value: BigInt(clean), line });
    }
  }

  private string(): void {
    const startLine = this.line;
    let prefix = "";
    while (/[rRuUbBfF]/.test(this.src[this.pos]!)) prefix += this.src[this.pos++]!.toLowerCase();
    if (prefix.includes("f")) {
      throw new RestrictedError("unsupported", "f-strings are", this.file, startLine);
    }
    const q = this.src[this.pos]!;
    const triple = this.src.startsWith(q.repeat(3), this.pos);
    const quote = triple ? q.repeat(3) : q;
    this.pos += quote.length;
    const raw = prefix.includes("r");
    let value = "";
    for (;;) {
      if (this.pos >= this.src.length) {
        this.fail(
          triple ? "unterminated triple-quoted string literal" : "unterminated string literal",
          startLine,
        );
      }
      if (this.src.startsWith(quote, this.pos)) {
        this.pos += quote.length;
        break;
      }
      const ch = this.src[this.pos]!;
      if (ch === "\n" || ch === "\r") {
        if (!triple) this.fail("unterminated string literal", startLine);
        if (ch === "\r" && this.src[this.pos + 1] === "\n") this.pos++;
        this.line++;
        value += "\n";
        this.pos++;
        continue;
      }
      if (ch === "\\") {
        value += this.escape(raw);
        continue;
      }
      value += ch;
      this.pos++;
    }
    const bytes = prefix.includes("b");
    if (bytes && /[^\p{ASCII}]/u.test(value) && !raw)
      this.fail("bytes can only contain ASCII literal characters", startLine);
    this.out.push({ type: "string", value, bytes, line: startLine });
  }

  /** Decode one backslash escape at this.pos (which points at the backslash). */
  private escape(raw: boolean): string {
    const src = this.src;
    const n = src[this.pos + 1];
    if (n === undefined) {
      this.pos++;
      return "\\";
    }
    if (n === "\n" || n === "\r") {
      this.pos += n === "\r" && src[this.pos + 2] === "\n" ? 3 : 2;
      this.line++;
      return raw ? `\\\n` : "";
    }
    if (raw) {
      this.pos += 2;
      return `\\${n}`;
    }
    const simple: Record<string, string> = {
      n: "\n",
      t: "\t",
      r: "\r",
      "\\": "\\",
      "'": "'",
      '"': '"',
      a: "\x07",
      b: "\b",
      f: "\f",
      v: "\v",
    };
    const s = simple[n];
    if (s !== undefined) {
      this.pos += 2;
      return s;
    }
    const hex = (len: number): string => {
      const digits = src.slice(this.pos + 2, this.pos + 2 + len);
      if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(digits)) this.fail(`truncated \\${n} escape`);
      const cp = Number.parseInt(digits, 16);
      if (cp > 0x10ffff) this.fail(`illegal Unicode character \\${n}${digits}`);
      this.pos += 2 + len;
      return String.fromCodePoint(cp);
    };
    if (n === "x") return hex(2);
    if (n === "u") return hex(4);
    if (n === "U") return hex(8);
    if (/[0-7]/.test(n)) {
      const m = /^[0-7]{1,3}/.exec(src.slice(this.pos + 1, this.pos + 4))![0];
      this.pos += 1 + m.length;
      return String.fromCodePoint(Number.parseInt(m, 8));
    }
    if (n === "N") throw new RestrictedError("unsupported", "\\N{...} escapes are", this.file, this.line);
    this.pos += 2;
    return `\\${n}`;
  }
}
