import type { Arg, Comprehension, Expr } from "./ast.js";
import { DisplayParser } from "./display-parser.js";
import { RestrictedError } from "./errors.js";
import { KEYWORDS, MAX_DEPTH, UNSUPPORTED_STMT } from "./token-cursor.js";

const COMPARE = new Set(["<", ">", "==", ">=", "<=", "!="]);

/** The expression grammar; the statement grammar extends it in parser.ts. */
export class ExprParser extends DisplayParser {
  // ---- expressions ---------------------------------------------------------------------------

  /** `a, b` and `*a, b` (tuple when there is a comma), used for statements and `in` clauses. */
  protected starExprList(): Expr {
    return this.sequence(
      () => (this.isOp("*") ? this.starred() : this.namedTest()),
      () => this.endOfList(),
    );
  }

  protected exprList(): Expr {
    return this.sequence(
      () => this.orExpr(),
      () => this.endOfList(),
    );
  }

  protected targetList(): Expr {
    const e = this.sequence(
      () => (this.isOp("*") ? this.starred() : this.orExpr()),
      () => this.isKw("in") || this.endOfList(),
    );
    this.checkTarget(e, true);
    return e;
  }

  protected endOfList(): boolean {
    const t = this.tok;
    return (
      t.type !== "name" &&
      t.type !== "string" &&
      t.type !== "int" &&
      t.type !== "float" &&
      !(t.type === "op" && ["(", "[", "{", "-", "+", "~", "*", "..."].includes(t.value))
    );
  }

  protected sequence(item: () => Expr, atEnd: () => boolean): Expr {
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

  protected starred(): Expr {
    const line = this.tok.line;
    this.expectOp("*");
    return { t: "star", value: this.orExpr(), line };
  }

  protected namedTest(): Expr {
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

  protected orTest(): Expr {
    return this.boolChain("or", () => this.andTest());
  }

  protected andTest(): Expr {
    return this.boolChain("and", () => this.notTest());
  }

  protected boolChain(op: "and" | "or", next: () => Expr): Expr {
    const first = next();
    if (!this.isKw(op)) return first;
    const values = [first];
    while (this.isKw(op)) {
      this.i++;
      values.push(next());
    }
    return { t: "boolop", op, values, line: first.line };
  }

  protected notTest(): Expr {
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

  protected compOp(): string | undefined {
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

  protected comparison(): Expr {
    const left = this.orExpr();
    const ops: string[] = [];
    const comparators: Expr[] = [];
    for (let op = this.compOp(); op !== undefined; op = this.compOp()) {
      ops.push(op);
      comparators.push(this.orExpr());
    }
    return ops.length ? { t: "compare", left, ops, comparators, line: left.line } : left;
  }

  protected binary(ops: string[], next: () => Expr): Expr {
    let left = next();
    while (this.tok.type === "op" && ops.includes(this.tok.value)) {
      const op = this.tok.value;
      this.i++;
      left = { t: "binop", op, left, right: next(), line: left.line };
    }
    return left;
  }

  protected orExpr(): Expr {
    return this.binary(["|"], () =>
      this.binary(["^"], () =>
        this.binary(["&"], () => this.binary(["<<", ">>"], () => this.binary(["+", "-"], () => this.term()))),
      ),
    );
  }

  protected term(): Expr {
    return this.binary(["*", "/", "//", "%", "@"], () => this.factor());
  }

  protected factor(): Expr {
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

  protected power(): Expr {
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

  protected trailers(e: Expr): Expr {
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

  protected callArgs(): Arg[] {
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

  protected subscript(): Expr {
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

  protected sliceItem(): Expr {
    const line = this.tok.line;
    const lower = this.isOp(":") ? null : this.test();
    if (!this.eatOp(":")) return lower!;
    const upper = this.isOp(":") || this.isOp("]") || this.isOp(",") ? null : this.test();
    let step: Expr | null = null;
    if (this.eatOp(":")) step = this.isOp("]") || this.isOp(",") ? null : this.test();
    return { t: "slice", lower, upper, step, line };
  }

  protected comprehension(
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

  protected orTestNoCond(): Expr {
    if (this.isKw("lambda")) this.unsupported("lambda");
    return this.orTest();
  }

  protected atom(): Expr {
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

  protected nameAtom(id: string, line: number): Expr {
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
  protected strings(): Expr {
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

  protected paren(): Expr {
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
}
