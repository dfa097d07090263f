import type { Arg, Comprehension, Expr, Handler, Stmt } from "./ast.js";
import { RestrictedError } from "./errors.js";
import { type Token, tokenize } from "./lexer.js";

const KEYWORDS = new Set(
  "False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield".split(
    " ",
  ),
);

/** Statements and expressions outside the subset, with the phrase used in the error. */
const UNSUPPORTED_STMT: Record<string, string> = {
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
const CLASS_FIX = "install python3 or move the logging config out of fedmsg.d";
const MAX_DEPTH = 100;
const AUG = new Set(["+=", "-=", "*=", "/=", "//=", "%=", "**=", "|=", "&=", "^=", ">>=", "<<=", "@="]);
const COMPARE = new Set(["<", ">", "==", ">=", "<=", "!="]);

/** Parse Python source into statements, refusing anything outside the supported subset. */
export function parse(src: string, file: string): Stmt[] {
  return new Parser(tokenize(src, file), file).parseFile();
}

class Parser {
  private i = 0;
  private depth = 0;

  constructor(
    private readonly toks: Token[],
    private readonly file: string,
  ) {}

  private get tok(): Token {
    return this.toks[this.i] ?? this.toks[this.toks.length - 1]!;
  }

  private fail(msg: string, line = this.tok.line): never {
    throw new RestrictedError("syntax", msg, this.file, line);
  }

  private unsupported(word: string, line = this.tok.line): never {
    const what = (Object.hasOwn(UNSUPPORTED_STMT, word) ? UNSUPPORTED_STMT[word] : undefined) ?? `${word} is`;
    throw new RestrictedError("unsupported", what, this.file, line, word === "class" ? CLASS_FIX : undefined);
  }

  /** The current token's type, without TypeScript narrowing it across `this.i++`. */
  private kind(): Token["type"] {
    return this.tok.type;
  }

  private isOp(v: string): boolean {
    return this.tok.type === "op" && this.tok.value === v;
  }

  private isKw(v: string): boolean {
    return this.tok.type === "name" && this.tok.value === v;
  }

  private eatOp(v: string): boolean {
    if (!this.isOp(v)) return false;
    this.i++;
    return true;
  }

  private expectOp(v: string): void {
    if (!this.eatOp(v)) this.fail(`expected '${v}'${this.describe()}`);
  }

  private expectKw(v: string): void {
    if (!this.isKw(v)) this.fail(`expected '${v}'${this.describe()}`);
    this.i++;
  }

  private describe(): string {
    const t = this.tok;
    if (t.type === "eof") return " before the end of the file";
    if (t.type === "newline") return " before the end of the line";
    if (t.type === "indent") return ", got an unexpected indent";
    if (t.type === "string") return ", got a string";
    return `, got ${JSON.stringify(String(t.value))}`;
  }

  private ident(): string {
    const t = this.tok;
    if (t.type !== "name" || KEYWORDS.has(t.value)) this.fail(`expected a name${this.describe()}`);
    this.i++;
    return t.value;
  }

  private enter(): void {
    if (++this.depth > MAX_DEPTH) this.fail("too deeply nested");
  }

  parseFile(): Stmt[] {
    const body: Stmt[] = [];
    while (this.tok.type !== "eof") {
      if (this.tok.type === "newline") {
        this.i++;
        continue;
      }
      body.push(...this.statement());
    }
    return body;
  }

  private statement(): Stmt[] {
    const t = this.tok;
    if (t.type === "indent") this.fail("unexpected indent");
    if (t.type === "dedent") this.fail("unexpected unindent");
    if (this.isOp("@"))
      throw new RestrictedError("unsupported", "decorators are", this.file, t.line, CLASS_FIX);
    if (t.type === "name") {
      if (t.value === "if") return [this.ifStmt()];
      if (t.value === "for") return [this.forStmt()];
      if (t.value === "try") return [this.tryStmt()];
      if (Object.hasOwn(UNSUPPORTED_STMT, t.value) && t.value !== "lambda" && t.value !== "await")
        this.unsupported(t.value);
    }
    return this.simpleLine();
  }

  private simpleLine(): Stmt[] {
    const out: Stmt[] = [this.small()];
    while (this.eatOp(";")) {
      if (this.tok.type === "newline") break;
      out.push(this.small());
    }
    if (this.tok.type !== "newline" && this.tok.type !== "eof") this.fail(`invalid syntax${this.describe()}`);
    if (this.tok.type === "newline") this.i++;
    return out;
  }

  private small(): Stmt {
    const line = this.tok.line;
    if (this.tok.type === "name") {
      const w = this.tok.value;
      if (w === "pass" || w === "break" || w === "continue") {
        this.i++;
        return { t: w, line };
      }
      if (w === "import") return this.importStmt();
      if (w === "from") return this.fromStmt();
      if (w === "del") {
        this.i++;
        const targets = this.exprList();
        return { t: "del", targets: targets.t === "tuple" ? targets.elts : [targets], line };
      }
      if (Object.hasOwn(UNSUPPORTED_STMT, w) && w !== "lambda" && w !== "await") this.unsupported(w);
    }
    return this.exprStmt(line);
  }

  private exprStmt(line: number): Stmt {
    const first = this.starExprList();
    if (this.tok.type === "op" && AUG.has(this.tok.value)) {
      const op = this.tok.value.slice(0, -1);
      this.i++;
      this.checkTarget(first, false);
      return { t: "augassign", target: first, op, value: this.starExprList(), line };
    }
    if (this.isOp(":"))
      throw new RestrictedError("unsupported", "annotated assignments are", this.file, line);
    const targets: Expr[] = [];
    let value = first;
    while (this.eatOp("=")) {
      this.checkTarget(value, true);
      targets.push(value);
      value = this.starExprList();
    }
    return targets.length ? { t: "assign", targets, value, line } : { t: "expr", value, line };
  }

  private checkTarget(e: Expr, unpack: boolean): void {
    if (e.t === "name" || e.t === "subscript") return;
    if (e.t === "attr")
      throw new RestrictedError("unsupported", "attribute assignments are", this.file, e.line);
    if (unpack && (e.t === "tuple" || e.t === "list")) {
      for (const x of e.elts) this.checkTarget(x.t === "star" ? x.value : x, true);
      return;
    }
    this.fail("cannot assign to expression", e.line);
  }

  private dotted(): string {
    let name = this.ident();
    while (this.eatOp(".")) name += `.${this.ident()}`;
    return name;
  }

  private asName(): string | null {
    if (!this.isKw("as")) return null;
    this.i++;
    return this.ident();
  }

  private importStmt(): Stmt {
    const line = this.tok.line;
    this.i++;
    const names: Array<{ module: string; asname: string | null }> = [];
    do {
      const module = this.dotted();
      const asname = this.asName();
      names.push({ module, asname });
    } while (this.eatOp(","));
    return { t: "import", names, line };
  }

  private fromStmt(): Stmt {
    const line = this.tok.line;
    this.i++;
    if (this.isOp(".") || this.isOp("..."))
      throw new RestrictedError("unsupported", "relative imports are", this.file, line);
    const module = this.dotted();
    this.expectKw("import");
    if (this.isOp("*")) throw new RestrictedError("unsupported", "star imports are", this.file, line);
    const paren = this.eatOp("(");
    const names: Array<{ name: string; asname: string | null }> = [];
    do {
      if (paren && this.isOp(")")) break;
      const name = this.ident();
      const asname = this.asName();
      names.push({ name, asname });
    } while (this.eatOp(","));
    if (paren) this.expectOp(")");
    return { t: "from", module, names, line };
  }

  private block(): Stmt[] {
    this.expectOp(":");
    this.enter();
    try {
      if (this.tok.type !== "newline") return this.simpleLine();
      this.i++;
      if (this.kind() !== "indent") this.fail("expected an indented block");
      this.i++;
      const body: Stmt[] = [];
      while (this.kind() !== "dedent" && this.kind() !== "eof") body.push(...this.statement());
      if (this.kind() === "dedent") this.i++;
      return body;
    } finally {
      this.depth--;
    }
  }

  private ifStmt(): Stmt {
    const line = this.tok.line;
    this.i++;
    const test = this.namedTest();
    const body = this.block();
    let orelse: Stmt[] = [];
    if (this.isKw("elif")) orelse = [this.ifStmt()];
    else if (this.isKw("else")) {
      this.i++;
      orelse = this.block();
    }
    return { t: "if", test, body, orelse, line };
  }

  private forStmt(): Stmt {
    const line = this.tok.line;
    this.i++;
    const target = this.targetList();
    this.expectKw("in");
    const iter = this.starExprList();
    const body = this.block();
    let orelse: Stmt[] = [];
    if (this.isKw("else")) {
      this.i++;
      orelse = this.block();
    }
    return { t: "for", target, iter, body, orelse, line };
  }

  private tryStmt(): Stmt {
    const line = this.tok.line;
    this.i++;
    const body = this.block();
    const handlers: Handler[] = [];
    while (this.isKw("except")) {
      const hline = this.tok.line;
      this.i++;
      if (this.isOp("*")) throw new RestrictedError("unsupported", "except* is", this.file, hline);
      let types: string[] | null = null;
      let name: string | null = null;
      if (!this.isOp(":")) {
        const e = this.test();
        const elts = e.t === "tuple" ? e.elts : [e];
        types = elts.map((x) =>
          x.t === "name"
            ? x.id
            : x.t === "attr"
              ? x.attr
              : this.fail("expected an exception class name", x.line),
        );
        if (this.isKw("as")) {
          this.i++;
          name = this.ident();
        }
      }
      handlers.push({ types, name, body: this.block(), line: hline });
    }
    let orelse: Stmt[] = [];
    let finalbody: Stmt[] = [];
    if (handlers.length && this.isKw("else")) {
      this.i++;
      orelse = this.block();
    }
    if (this.isKw("finally")) {
      this.i++;
      finalbody = this.block();
    }
    if (!handlers.length && !finalbody.length) this.fail("expected 'except' or 'finally' block");
    return { t: "try", body, handlers, orelse, finalbody, line };
  }

  // ---- expressions ---------------------------------------------------------------------------

  /** `a, b` and `*a, b` (tuple when there is a comma), used for statements and `in` clauses. */
  private starExprList(): Expr {
    return this.sequence(
      () => (this.isOp("*") ? this.starred() : this.namedTest()),
      () => this.endOfList(),
    );
  }

  private exprList(): Expr {
    return this.sequence(
      () => this.orExpr(),
      () => this.endOfList(),
    );
  }

  private targetList(): Expr {
    const e = this.sequence(
      () => (this.isOp("*") ? this.starred() : this.orExpr()),
      () => this.isKw("in") || this.endOfList(),
    );
    this.checkTarget(e, true);
    return e;
  }

  private endOfList(): boolean {
    const t = this.tok;
    return (
      t.type !== "name" &&
      t.type !== "string" &&
      t.type !== "int" &&
      t.type !== "float" &&
      !(t.type === "op" && ["(", "[", "{", "-", "+", "~", "*", "..."].includes(t.value))
    );
  }

  private sequence(item: () => Expr, atEnd: () => boolean): Expr {
    const line = this.tok.line;
    const first = item();
    if (!this.isOp(",")) return first;
    const elts = [first];
    while (this.eatOp(",")) {
      if (atEnd()) break;
      elts.push(item());
    }
    return { t: "tuple", elts, line };
  }

  private starred(): Expr {
    const line = this.tok.line;
    this.expectOp("*");
    return { t: "star", value: this.orExpr(), line };
  }

  private namedTest(): Expr {
    const e = this.test();
    if (this.isOp(":="))
      throw new RestrictedError("unsupported", "assignment expressions (:=) are", this.file, e.line);
    return e;
  }

  test(): Expr {
    this.enter();
    try {
      if (this.isKw("lambda")) this.unsupported("lambda");
      const line = this.tok.line;
      const body = this.orTest();
      if (!this.isKw("if")) return body;
      this.i++;
      const test = this.orTest();
      this.expectKw("else");
      return { t: "ifexp", test, body, orelse: this.test(), line };
    } finally {
      this.depth--;
    }
  }

  private orTest(): Expr {
    return this.boolChain("or", () => this.andTest());
  }

  private andTest(): Expr {
    return this.boolChain("and", () => this.notTest());
  }

  private boolChain(op: "and" | "or", next: () => Expr): Expr {
    const first = next();
    if (!this.isKw(op)) return first;
    const values = [first];
    while (this.isKw(op)) {
      this.i++;
      values.push(next());
    }
    return { t: "boolop", op, values, line: first.line };
  }

  private notTest(): Expr {
    if (!this.isKw("not")) return this.comparison();
    const line = this.tok.line;
    this.i++;
    this.enter();
    try {
      return { t: "not", operand: this.notTest(), line };
    } finally {
      this.depth--;
    }
  }

  private compOp(): string | undefined {
    const t = this.tok;
    if ((t.type === "op" && COMPARE.has(t.value)) || this.isKw("in")) {
      this.i++;
      return t.value as string;
    }
    if (this.isKw("not") && this.toks[this.i + 1]?.type === "name" && this.toks[this.i + 1]?.value === "in") {
      this.i += 2;
      return "not in";
    }
    if (this.isKw("is")) {
      this.i++;
      if (!this.isKw("not")) return "is";
      this.i++;
      return "is not";
    }
    return undefined;
  }

  private comparison(): Expr {
    const left = this.orExpr();
    const ops: string[] = [];
    const comparators: Expr[] = [];
    for (let op = this.compOp(); op !== undefined; op = this.compOp()) {
      ops.push(op);
      comparators.push(this.orExpr());
    }
    return ops.length ? { t: "compare", left, ops, comparators, line: left.line } : left;
  }

  private binary(ops: string[], next: () => Expr): Expr {
    let left = next();
    while (this.tok.type === "op" && ops.includes(this.tok.value)) {
      const op = this.tok.value;
      this.i++;
      left = { t: "binop", op, left, right: next(), line: left.line };
    }
    return left;
  }

  private orExpr(): Expr {
    return this.binary(["|"], () =>
      this.binary(["^"], () =>
        this.binary(["&"], () => this.binary(["<<", ">>"], () => this.binary(["+", "-"], () => this.term()))),
      ),
    );
  }

  private term(): Expr {
    return this.binary(["*", "/", "//", "%", "@"], () => this.factor());
  }

  private factor(): Expr {
    const t = this.tok;
    if (t.type === "op" && (t.value === "-" || t.value === "+" || t.value === "~")) {
      this.i++;
      this.enter();
      try {
        return { t: "unary", op: t.value, operand: this.factor(), line: t.line };
      } finally {
        this.depth--;
      }
    }
    return this.power();
  }

  private power(): Expr {
    if (this.isKw("await")) this.unsupported("await");
    const base = this.trailers(this.atom());
    if (!this.eatOp("**")) return base;
    this.enter();
    try {
      return { t: "binop", op: "**", left: base, right: this.factor(), line: base.line };
    } finally {
      this.depth--;
    }
  }

  private trailers(e: Expr): Expr {
    let depth = 0;
    for (;;) {
      if (++depth > MAX_DEPTH) this.fail("too deeply nested");
      const line = this.tok.line;
      if (this.eatOp("(")) e = { t: "call", func: e, args: this.callArgs(), line };
      else if (this.eatOp("[")) {
        e = { t: "subscript", value: e, index: this.subscript(), line };
        this.expectOp("]");
      } else if (this.eatOp(".")) e = { t: "attr", value: e, attr: this.ident(), line };
      else return e;
    }
  }

  private callArgs(): Arg[] {
    const args: Arg[] = [];
    while (!this.eatOp(")")) {
      if (this.eatOp("**")) args.push({ kind: "dstar", value: this.test() });
      else if (this.eatOp("*")) args.push({ kind: "star", value: this.test() });
      else if (
        this.tok.type === "name" &&
        this.toks[this.i + 1]?.type === "op" &&
        this.toks[this.i + 1]?.value === "="
      ) {
        const name = this.ident();
        this.i++;
        args.push({ kind: "kw", name, value: this.test() });
      } else {
        const value = this.namedTest();
        if (this.isKw("for") || this.isKw("async")) {
          args.push({ kind: "pos", value: this.comprehension("gen", value, null, value.line) });
        } else args.push({ kind: "pos", value });
      }
      if (!this.isOp(")")) this.expectOp(",");
    }
    return args;
  }

  private subscript(): Expr {
    const line = this.tok.line;
    const items: Expr[] = [];
    do {
      if (this.isOp("]")) break;
      items.push(this.sliceItem());
    } while (this.eatOp(","));
    if (items.length === 0) this.fail("expected a subscript");
    const prev = this.toks[this.i - 1];
    const trailingComma = prev?.type === "op" && prev.value === ",";
    return items.length === 1 && !trailingComma ? items[0]! : { t: "tuple", elts: items, line };
  }

  private sliceItem(): Expr {
    const line = this.tok.line;
    const lower = this.isOp(":") ? null : this.test();
    if (!this.eatOp(":")) return lower!;
    const upper = this.isOp(":") || this.isOp("]") || this.isOp(",") ? null : this.test();
    let step: Expr | null = null;
    if (this.eatOp(":")) step = this.isOp("]") || this.isOp(",") ? null : this.test();
    return { t: "slice", lower, upper, step, line };
  }

  private comprehension(
    kind: "list" | "set" | "gen" | "dict",
    elt: Expr,
    value: Expr | null,
    line: number,
  ): Expr {
    const gens: Comprehension[] = [];
    while (this.isKw("for") || this.isKw("async")) {
      if (this.isKw("async")) this.unsupported("async");
      this.i++;
      const target = this.targetList();
      this.expectKw("in");
      const iter = this.orTest();
      const ifs: Expr[] = [];
      while (this.isKw("if")) {
        this.i++;
        ifs.push(this.orTestNoCond());
      }
      gens.push({ target, iter, ifs });
    }
    return { t: "comp", kind, elt, value, gens, line };
  }

  private orTestNoCond(): Expr {
    if (this.isKw("lambda")) this.unsupported("lambda");
    return this.orTest();
  }

  private atom(): Expr {
    const t = this.tok;
    const line = t.line;
    switch (t.type) {
      case "int":
      case "float":
        this.i++;
        return { t: "const", v: t.value, line };
      case "string":
        return this.strings();
      case "name":
        return this.nameAtom(t.value, line);
      case "op":
        if (t.value === "(") return this.paren();
        if (t.value === "[") return this.listDisplay();
        if (t.value === "{") return this.braceDisplay();
        if (t.value === "...") throw new RestrictedError("unsupported", "Ellipsis (...) is", this.file, line);
        break;
      default:
        break;
    }
    return this.fail(`invalid syntax${this.describe()}`);
  }

  private nameAtom(id: string, line: number): Expr {
    if (id === "None" || id === "True" || id === "False") {
      this.i++;
      return { t: "const", v: id === "None" ? null : id === "True", line };
    }
    if (Object.hasOwn(UNSUPPORTED_STMT, id)) this.unsupported(id);
    if (KEYWORDS.has(id)) this.fail(`invalid syntax${this.describe()}`);
    this.i++;
    return { t: "name", id, line };
  }

  /** Adjacent literals concatenate: "a" "b" == "ab"; mixing str and bytes is an error, as in Python. */
  private strings(): Expr {
    const line = this.tok.line;
    let value = "";
    let bytes: boolean | undefined;
    while (this.tok.type === "string") {
      const t = this.tok;
      if (bytes !== undefined && bytes !== t.bytes) this.fail("cannot mix bytes and nonbytes literals");
      bytes = t.bytes;
      value += t.value;
      this.i++;
    }
    return { t: "const", v: bytes ? { bytes: value } : value, line };
  }

  private paren(): Expr {
    const line = this.tok.line;
    this.i++;
    if (this.eatOp(")")) return { t: "tuple", elts: [], line };
    if (this.isKw("yield")) this.unsupported("yield");
    const first = this.isOp("*") ? this.starred() : this.namedTest();
    if (this.isKw("for") || this.isKw("async")) {
      const e = this.comprehension("gen", first, null, line);
      this.expectOp(")");
      return e;
    }
    if (!this.isOp(",")) {
      this.expectOp(")");
      if (first.t === "star") this.fail("cannot use starred expression here", line);
      return first;
    }
    const elts = [first];
    while (this.eatOp(",")) {
      if (this.isOp(")")) break;
      elts.push(this.isOp("*") ? this.starred() : this.namedTest());
    }
    this.expectOp(")");
    return { t: "tuple", elts, line };
  }

  private listDisplay(): Expr {
    const line = this.tok.line;
    this.i++;
    if (this.eatOp("]")) return { t: "list", elts: [], line };
    const first = this.isOp("*") ? this.starred() : this.namedTest();
    if (this.isKw("for") || this.isKw("async")) {
      const e = this.comprehension("list", first, null, line);
      this.expectOp("]");
      return e;
    }
    const elts = [first];
    while (this.eatOp(",")) {
      if (this.isOp("]")) break;
      elts.push(this.isOp("*") ? this.starred() : this.namedTest());
    }
    this.expectOp("]");
    return { t: "list", elts, line };
  }

  private braceDisplay(): Expr {
    const line = this.tok.line;
    this.i++;
    if (this.eatOp("}")) return { t: "dict", items: [], line };
    if (this.isOp("*")) return this.setRest(line, this.starred());
    const k = this.eatOp("**") ? null : this.namedTest();
    if (k !== null && !this.isOp(":")) return this.setRest(line, k);
    if (k !== null) this.expectOp(":");
    const v = k === null ? this.orExpr() : this.test();
    if (k !== null && (this.isKw("for") || this.isKw("async"))) {
      const e = this.comprehension("dict", k, v, line);
      this.expectOp("}");
      return e;
    }
    const items: Array<{ k: Expr | null; v: Expr }> = [{ k, v }];
    while (this.eatOp(",")) {
      if (this.isOp("}")) break;
      if (this.eatOp("**")) items.push({ k: null, v: this.orExpr() });
      else {
        const key = this.test();
        this.expectOp(":");
        items.push({ k: key, v: this.test() });
      }
    }
    this.expectOp("}");
    return { t: "dict", items, line };
  }

  private setRest(line: number, first: Expr): Expr {
    if (first.t !== "star" && (this.isKw("for") || this.isKw("async"))) {
      const e = this.comprehension("set", first, null, line);
      this.expectOp("}");
      return e;
    }
    const elts = [first];
    while (this.eatOp(",")) {
      if (this.isOp("}")) break;
      elts.push(this.isOp("*") ? this.starred() : this.namedTest());
    }
    this.expectOp("}");
    return { t: "set", elts, line };
  }
}
