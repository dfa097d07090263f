import type { Expr, Handler, Stmt } from "./ast.js";
import { RestrictedError } from "./errors.js";
import { ExprParser } from "./expr-parser.js";
import { tokenize } from "./lexer.js";
import { AUG, CLASS_FIX, UNSUPPORTED_STMT } from "./token-cursor.js";

/** Parse Python source into statements, refusing anything outside the supported subset. */
export function parse(src: string, file: string): Stmt[] {
  return new Parser(tokenize(src, file), file).parseFile();
}

/** The statement grammar (expressions come from ExprParser). */
class Parser extends ExprParser {
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

  protected statement(): Stmt[] {
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

  protected simpleLine(): Stmt[] {
    const out: Stmt[] = [this.small()];
    while (this.eatOp(";")) {
      if (this.tok.type === "newline") break;
      out.push(this.small());
    }
    if (this.tok.type !== "newline" && this.tok.type !== "eof") this.fail(`invalid syntax${this.describe()}`);
    if (this.tok.type === "newline") this.i++;
    return out;
  }

  protected small(): Stmt {
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

  protected exprStmt(line: number): Stmt {
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

  protected dotted(): string {
    let name = this.ident();
    while (this.eatOp(".")) name += `.${this.ident()}`;
    return name;
  }

  protected asName(): string | null {
    if (!this.isKw("as")) return null;
    this.i++;
    return this.ident();
  }

  protected importStmt(): Stmt {
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

  protected fromStmt(): Stmt {
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

  protected block(): Stmt[] {
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

  protected ifStmt(): Stmt {
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

  protected forStmt(): Stmt {
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

  protected tryStmt(): Stmt {
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
}
