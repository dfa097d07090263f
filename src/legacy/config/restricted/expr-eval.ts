import type { Arg, Comprehension, Expr } from "./ast.js";
import { UNSUPPORTED_BUILTINS } from "./builtins.js";
import { PyException, RestrictedError } from "./errors.js";
import { getAttr } from "./methods.js";
import { binop, contains, getItem, setItem } from "./ops.js";
import {
  type Budget,
  compare,
  eq,
  iterate,
  type Kwargs,
  num,
  PyBytes,
  PyDict,
  PyFunc,
  PyList,
  PyModule,
  PySet,
  PyTuple,
  type PyValue,
  truthy,
  typeError,
  typeName,
} from "./values.js";

/** A name scope: module globals, or a comprehension's own scope chained to its parent. */
export class Scope {
  readonly vars = new Map<string, PyValue>();
  constructor(readonly parent?: Scope) {}
  lookup(name: string): PyValue | undefined {
    for (let s: Scope | undefined = this; s; s = s.parent) {
      const v = s.vars.get(name);
      if (v !== undefined) return v;
    }
    return undefined;
  }
}

const _IMPORT_HANDLERS = ["ImportError", "ModuleNotFoundError", "Exception", "BaseException"];

/** Evaluates expressions and binds targets with Python semantics (for the subset). */
export class ExprEvaluator {
  constructor(
    protected readonly budget: Budget,
    protected readonly builtins: Map<string, PyValue>,
  ) {}

  protected get file(): string {
    return this.budget.file;
  }

  // ---- targets -------------------------------------------------------------------------------

  protected assign(target: Expr, v: PyValue, scope: Scope): void {
    switch (target.t) {
      case "name":
        scope.vars.set(target.id, v);
        return;
      case "subscript":
        setItem(this.eval(target.value, scope), this.index(target.index, scope), v);
        return;
      case "tuple":
      case "list":
        this.unpack(target.elts, v, scope);
        return;
      default:
        throw new RestrictedError("unsupported", `assignment to ${target.t} is`, this.file, target.line);
    }
  }

  protected unpack(targets: Expr[], v: PyValue, scope: Scope): void {
    const items = iterate(v, this.budget);
    const star = targets.findIndex((t) => t.t === "star");
    if (star < 0) {
      if (items.length !== targets.length) {
        throw new PyException(
          "ValueError",
          `${items.length > targets.length ? "too many" : "not enough"} values to unpack (expected ${targets.length}, got ${items.length})`,
        );
      }
      for (const [i, t] of targets.entries()) this.assign(t, items[i]!, scope);
      return;
    }
    const after = targets.length - star - 1;
    if (items.length < targets.length - 1) throw new PyException("ValueError", "not enough values to unpack");
    for (const [i, t] of targets.slice(0, star).entries()) this.assign(t, items[i]!, scope);
    const starT = targets[star]!;
    if (starT.t === "star")
      this.assign(starT.value, new PyList(items.slice(star, items.length - after)), scope);
    for (const [i, t] of targets.slice(star + 1).entries())
      this.assign(t, items[items.length - after + i]!, scope);
  }

  // ---- expressions ---------------------------------------------------------------------------

  protected name(id: string, line: number, scope: Scope): PyValue {
    // Explicit undefined checks: a variable holding None (null) must not fall through to builtins.
    const local = scope.lookup(id);
    if (local !== undefined) return local;
    const builtin = this.builtins.get(id);
    if (builtin !== undefined) return builtin;
    if (UNSUPPORTED_BUILTINS.has(id))
      throw new RestrictedError("unsupported", `the builtin ${id}() is`, this.file, line);
    throw new PyException("NameError", `name '${id}' is not defined`, line);
  }

  protected index(e: Expr, scope: Scope): PyValue | { slice: [PyValue, PyValue, PyValue] } {
    if (e.t !== "slice") return this.eval(e, scope);
    const part = (x: Expr | null): PyValue => (x ? this.eval(x, scope) : null);
    return { slice: [part(e.lower), part(e.upper), part(e.step)] };
  }

  eval(e: Expr, scope: Scope): PyValue {
    this.budget.tick();
    this.budget.line = e.line;
    switch (e.t) {
      case "const":
        return e.v !== null && typeof e.v === "object" ? new PyBytes(e.v.bytes) : e.v;
      case "name":
        return this.name(e.id, e.line, scope);
      case "list":
        return new PyList(this.elements(e.elts, scope));
      case "tuple":
        return new PyTuple(this.elements(e.elts, scope));
      case "set": {
        const s = new PySet();
        for (const x of this.elements(e.elts, scope)) s.add(x);
        return s;
      }
      case "dict":
        return this.dict(e.items, scope);
      case "boolop": {
        let v: PyValue = null;
        for (const x of e.values) {
          v = this.eval(x, scope);
          if (truthy(v) === (e.op === "or")) return v;
        }
        return v;
      }
      case "not":
        return !truthy(this.eval(e.operand, scope));
      case "unary":
        return this.unary(e.op, this.eval(e.operand, scope));
      case "binop":
        return binop(e.op, this.eval(e.left, scope), this.eval(e.right, scope), this.budget);
      case "compare":
        return this.compare(e.left, e.ops, e.comparators, scope);
      case "ifexp":
        return truthy(this.eval(e.test, scope)) ? this.eval(e.body, scope) : this.eval(e.orelse, scope);
      case "call":
        return this.call(e.func, e.args, scope, e.line);
      case "attr": {
        const obj = this.eval(e.value, scope);
        this.budget.line = e.line;
        return getAttr(obj, e.attr, this.budget);
      }
      case "subscript":
        return this.subscript(e, scope);
      case "comp":
        return this.comprehension(e, scope);
      case "star":
        throw new RestrictedError("syntax", "can't use starred expression here", this.file, e.line);
      case "slice":
        throw new RestrictedError("syntax", "slices are only allowed inside []", this.file, e.line);
    }
  }

  protected subscript(e: Extract<Expr, { t: "subscript" }>, scope: Scope): PyValue {
    const obj = this.eval(e.value, scope);
    const idx = this.index(e.index, scope);
    this.budget.line = e.line;
    return getItem(obj, idx);
  }

  protected elements(elts: Expr[], scope: Scope): PyValue[] {
    const out: PyValue[] = [];
    for (const x of elts) {
      if (x.t === "star") out.push(...iterate(this.eval(x.value, scope), this.budget));
      else out.push(this.eval(x, scope));
      this.budget.size(out.length);
    }
    return out;
  }

  protected dict(items: Array<{ k: Expr | null; v: Expr }>, scope: Scope): PyDict {
    const d = new PyDict();
    for (const { k, v } of items) {
      if (k === null) {
        const src = this.eval(v, scope);
        if (!(src instanceof PyDict)) throw typeError(`'${typeName(src)}' object is not a mapping`);
        for (const [kk, vv] of src.map.values()) d.set(kk, vv);
      } else {
        const key = this.eval(k, scope);
        d.set(key, this.eval(v, scope));
      }
    }
    return d;
  }

  protected unary(op: string, v: PyValue): PyValue {
    const n = num(v);
    if (n === undefined) throw typeError(`bad operand type for unary ${op}: '${typeName(v)}'`);
    if (op === "-") return typeof n === "bigint" ? -n : -n;
    if (op === "+") return n;
    if (typeof n !== "bigint") throw typeError("bad operand type for unary ~: 'float'");
    return ~n;
  }

  protected compare(left: Expr, ops: string[], rights: Expr[], scope: Scope): boolean {
    let a = this.eval(left, scope);
    for (let i = 0; i < ops.length; i++) {
      const b = this.eval(rights[i]!, scope);
      const op = ops[i]!;
      let ok: boolean;
      if (op === "==") ok = eq(a, b);
      else if (op === "!=") ok = !eq(a, b);
      else if (op === "in") ok = contains(b, a);
      else if (op === "not in") ok = !contains(b, a);
      else if (op === "is") ok = a === b || (a === null && b === null);
      else if (op === "is not") ok = !(a === b);
      else {
        const c = compare(a, b);
        ok = op === "<" ? c < 0 : op === ">" ? c > 0 : op === "<=" ? c <= 0 : c >= 0;
      }
      if (!ok) return false;
      a = b;
    }
    return true;
  }

  protected call(funcExpr: Expr, args: Arg[], scope: Scope, line: number): PyValue {
    const f = this.eval(funcExpr, scope);
    const pos: PyValue[] = [];
    const kw: Kwargs = new Map();
    for (const a of args) {
      if (a.kind === "pos") pos.push(this.eval(a.value, scope));
      else if (a.kind === "star") pos.push(...iterate(this.eval(a.value, scope), this.budget));
      else if (a.kind === "kw") this.kwarg(kw, a.name, this.eval(a.value, scope));
      else {
        const d = this.eval(a.value, scope);
        if (!(d instanceof PyDict))
          throw typeError(`argument after ** must be a mapping, not ${typeName(d)}`);
        for (const [k, v] of d.map.values()) {
          if (typeof k !== "string") throw typeError("keywords must be strings");
          this.kwarg(kw, k, v);
        }
      }
    }
    if (!(f instanceof PyFunc)) {
      if (f instanceof PyModule && f.opaque)
        throw new RestrictedError("unsupported", `the module ${f.name} is`, this.file, line);
      throw typeError(`'${typeName(f)}' object is not callable`);
    }
    this.budget.line = line;
    return f.call(pos, kw);
  }

  protected kwarg(kw: Kwargs, name: string, v: PyValue): void {
    if (kw.has(name)) throw typeError(`got multiple values for keyword argument '${name}'`);
    kw.set(name, v);
  }

  protected comprehension(e: Extract<Expr, { t: "comp" }>, outer: Scope): PyValue {
    const scope = new Scope(outer);
    const results: PyValue[] = [];
    const dict = new PyDict();
    const loop = (gens: Comprehension[], first: boolean): void => {
      const [g, ...rest] = gens;
      if (!g) {
        this.budget.tick();
        if (e.kind === "dict") dict.set(this.eval(e.elt, scope), this.eval(e.value!, scope));
        else results.push(this.eval(e.elt, scope));
        this.budget.size(results.length + dict.map.size);
        return;
      }
      // The first iterable is evaluated in the enclosing scope, as Python does.
      for (const item of iterate(this.eval(g.iter, first ? outer : scope), this.budget)) {
        this.assign(g.target, item, scope);
        if (g.ifs.every((c) => truthy(this.eval(c, scope)))) loop(rest, false);
      }
    };
    loop(e.gens, true);
    if (e.kind === "dict") return dict;
    if (e.kind === "set") {
      const s = new PySet();
      for (const x of results) s.add(x);
      return s;
    }
    return new PyList(results);
  }
}
