import type { Expr } from "./ast.js";
import { TokenCursor } from "./token-cursor.js";

/** List, dict and set displays; the expressions inside them come from ExprParser, which extends this. */
export abstract class DisplayParser extends TokenCursor {
  abstract test(): Expr;
  protected abstract namedTest(): Expr;
  protected abstract orExpr(): Expr;
  protected abstract starred(): Expr;
  protected abstract comprehension(
    kind: "list" | "set" | "gen" | "dict",
    elt: Expr,
    value: Expr | null,
    line: number,
  ): Expr;

  protected listDisplay(): Expr {
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

  protected braceDisplay(): Expr {
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

  protected setRest(line: number, first: Expr): Expr {
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
