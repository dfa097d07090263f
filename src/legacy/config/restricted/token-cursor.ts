import type { Expr } from "./ast.js";
import { RestrictedError } from "./errors.js";
import type { Token } from "./lexer.js";

export const KEYWORDS = new Set(
  "False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield".split(
    " ",
  ),
);

/** Statements and expressions outside the subset, with the phrase used in the error. */
export const UNSUPPORTED_STMT: Record<string, string> = {
  class: "class definitions are",
  def: "function definitions (def) are",
  while: "while loops are",
  with: "with statements are",
  global: "global statements are",
  nonlocal: "nonlocal statements are",
  return: "return statements are",
  yield: "yield expressions are",
  raise: "raise statements are",
  assert: "assert statements are",
  async: "async code is",
  await: "await expressions are",
  lambda: "lambda expressions are",
};
export const CLASS_FIX = "install python3 or move the logging config out of fedmsg.d";
export const MAX_DEPTH = 100;
export const AUG = new Set([
  "+=",
  "-=",
  "*=",
  "/=",
  "//=",
  "%=",
  "**=",
  "|=",
  "&=",
  "^=",
  ">>=",
  "<<=",
  "@=",
]);

/** The token cursor under both grammars: position, lookahead tests, errors that name the line. */
export class TokenCursor {
  protected i = 0;
  protected depth = 0;

  constructor(
    protected readonly toks: Token[],
    protected readonly file: string,
  ) {}

  protected get tok(): Token {
    return this.toks[this.i] ?? this.toks[this.toks.length - 1]!;
  }

  protected fail(msg: string, line = this.tok.line): never {
    throw new RestrictedError("syntax", msg, this.file, line);
  }

  protected unsupported(word: string, line = this.tok.line): never {
    const what = (Object.hasOwn(UNSUPPORTED_STMT, word) ? UNSUPPORTED_STMT[word] : undefined) ?? `${word} is`;
    throw new RestrictedError("unsupported", what, this.file, line, word === "class" ? CLASS_FIX : undefined);
  }

  /** The current token's type, without TypeScript narrowing it across `this.i++`. */
  protected kind(): Token["type"] {
    return this.tok.type;
  }

  protected isOp(v: string): boolean {
    return this.tok.type === "op" && this.tok.value === v;
  }

  protected isKw(v: string): boolean {
    return this.tok.type === "name" && this.tok.value === v;
  }

  protected eatOp(v: string): boolean {
    if (!this.isOp(v)) return false;
    this.i++;
    return true;
  }

  protected expectOp(v: string): void {
    if (!this.eatOp(v)) this.fail(`expected '${v}'${this.describe()}`);
  }

  protected expectKw(v: string): void {
    if (!this.isKw(v)) this.fail(`expected '${v}'${this.describe()}`);
    this.i++;
  }

  protected describe(): string {
    const t = this.tok;
    if (t.type === "eof") return " before the end of the file";
    if (t.type === "newline") return " before the end of the line";
    if (t.type === "indent") return ", got an unexpected indent";
    if (t.type === "string") return ", got a string";
    return `, got ${JSON.stringify(String(t.value))}`;
  }

  protected ident(): string {
    const t = this.tok;
    if (t.type !== "name" || KEYWORDS.has(t.value)) this.fail(`expected a name${this.describe()}`);
    this.i++;
    return t.value;
  }

  protected enter(): void {
    if (++this.depth > MAX_DEPTH) this.fail("too deeply nested");
  }

  protected checkTarget(e: Expr, unpack: boolean): void {
    if (e.t === "name" || e.t === "subscript") return;
    if (e.t === "attr")
      throw new RestrictedError("unsupported", "attribute assignments are", this.file, e.line);
    if (unpack && (e.t === "tuple" || e.t === "list")) {
      for (const x of e.elts) this.checkTarget(x.t === "star" ? x.value : x, true);
      return;
    }
    this.fail("cannot assign to expression", e.line);
  }
}
