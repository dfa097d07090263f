import type { Expr, Stmt } from "./ast.js";
import { exceptionMatches, isKnownException, PyException, RestrictedError } from "./errors.js";
import { ExprEvaluator, Scope } from "./expr-eval.js";
import { binop, delItem, getItem, setItem } from "./ops.js";
import { type Budget, iterate, PyDict, PyList, PyModule, type PyValue, truthy } from "./values.js";

class LoopSignal {
  constructor(
    readonly kind: "break" | "continue",
    readonly line: number,
  ) {}
}

const IMPORT_HANDLERS = ["ImportError", "ModuleNotFoundError", "Exception", "BaseException"];

/** Executes parsed statements of one config file with Python semantics (for the subset). */
export class Interpreter extends ExprEvaluator {
  readonly globals = new Scope();
  /** >0 while inside a `try` whose handlers catch ImportError: unknown imports raise instead of binding. */
  private importGuard = 0;

  constructor(
    budget: Budget,
    builtins: Map<string, PyValue>,
    private readonly modules: Map<string, PyModule>,
  ) {
    super(budget, builtins);
  }

  run(body: Stmt[]): void {
    try {
      this.block(body, this.globals);
    } catch (e) {
      if (e instanceof LoopSignal)
        throw new RestrictedError("syntax", `'${e.kind}' outside loop`, this.file, e.line);
      throw e;
    }
  }

  private block(body: Stmt[], scope: Scope): void {
    for (const st of body) this.stmt(st, scope);
  }

  private stmt(st: Stmt, scope: Scope): void {
    this.budget.line = st.line;
    this.budget.tick();
    try {
      this.stmtInner(st, scope);
    } catch (e) {
      // budget.line is the line of the innermost expression evaluated last: where Python reports it.
      if (e instanceof PyException && e.line === 0) e.line = this.budget.line || st.line;
      throw e;
    }
  }

  private stmtInner(st: Stmt, scope: Scope): void {
    switch (st.t) {
      case "expr":
        this.eval(st.value, scope);
        return;
      case "assign": {
        const v = this.eval(st.value, scope);
        for (const t of st.targets) this.assign(t, v, scope);
        return;
      }
      case "augassign":
        this.augassign(st.target, st.op, st.value, scope);
        return;
      case "if":
        this.block(truthy(this.eval(st.test, scope)) ? st.body : st.orelse, scope);
        return;
      case "for":
        this.forLoop(st, scope);
        return;
      case "try":
        this.tryStmt(st, scope);
        return;
      case "import":
        for (const { module, asname } of st.names) {
          const top = module.split(".")[0]!;
          const mod = this.importModule(asname ? module : top, st.line);
          scope.vars.set(asname ?? top, mod);
        }
        return;
      case "from": {
        const mod = this.importModule(st.module, st.line);
        for (const { name, asname } of st.names) {
          const v = mod.opaque ? new PyModule(`${st.module}.${name}`, new Map(), true) : mod.attrs.get(name);
          if (v === undefined)
            throw new RestrictedError("unsupported", `${st.module}.${name} is`, this.file, st.line);
          scope.vars.set(asname ?? name, v);
        }
        return;
      }
      case "pass":
        return;
      case "break":
      case "continue":
        throw new LoopSignal(st.t, st.line);
      case "del":
        for (const t of st.targets) this.del(t, scope);
        return;
    }
  }

  private importModule(name: string, line: number): PyModule {
    const known = this.modules.get(name);
    if (known) return known;
    if (this.importGuard > 0) {
      throw new PyException("ModuleNotFoundError", `No module named '${name}' (restricted evaluator)`, line);
    }
    // Outside try/except ImportError an unknown import is tolerated; using the module is not.
    return new PyModule(name, new Map(), true);
  }

  private forLoop(st: Extract<Stmt, { t: "for" }>, scope: Scope): void {
    const items = iterate(this.eval(st.iter, scope), this.budget);
    for (const item of items) {
      this.budget.tick();
      this.assign(st.target, item, scope);
      try {
        this.block(st.body, scope);
      } catch (e) {
        if (!(e instanceof LoopSignal)) throw e;
        if (e.kind === "break") return;
      }
    }
    this.block(st.orelse, scope);
  }

  private tryStmt(st: Extract<Stmt, { t: "try" }>, scope: Scope): void {
    const guards = st.handlers.some(
      (h) => h.types === null || h.types.some((t) => IMPORT_HANDLERS.includes(t)),
    );
    try {
      if (guards) this.importGuard++;
      let raised: PyException | undefined;
      try {
        this.block(st.body, scope);
      } catch (e) {
        if (!(e instanceof PyException)) throw e;
        raised = e;
      } finally {
        if (guards) this.importGuard--;
      }
      if (!raised) {
        this.block(st.orelse, scope);
        return;
      }
      const err = raised;
      const handler = st.handlers.find(
        (h) => h.types === null || h.types.some((t) => this.matches(err, t, h.line)),
      );
      if (!handler) throw err;
      if (handler.name) scope.vars.set(handler.name, err.message);
      this.block(handler.body, scope);
    } finally {
      this.block(st.finalbody, scope);
    }
  }

  private matches(e: PyException, handler: string, line: number): boolean {
    if (!isKnownException(handler)) {
      throw new RestrictedError("unsupported", `the exception class ${handler} is`, this.file, line);
    }
    return exceptionMatches(e.pyType, handler);
  }

  private augassign(target: Expr, op: string, valueExpr: Expr, scope: Scope): void {
    if (target.t === "name") {
      const old = this.name(target.id, target.line, scope);
      scope.vars.set(target.id, this.inplace(op, old, this.eval(valueExpr, scope)));
      return;
    }
    if (target.t !== "subscript")
      throw new RestrictedError(
        "syntax",
        "illegal expression for augmented assignment",
        this.file,
        target.line,
      );
    const obj = this.eval(target.value, scope);
    const idx = this.index(target.index, scope);
    const old = getItem(obj, idx);
    setItem(obj, idx, this.inplace(op, old, this.eval(valueExpr, scope)));
  }

  /** `+=` on a list extends it in place (aliases see the change), as in Python. */
  private inplace(op: string, old: PyValue, v: PyValue): PyValue {
    if (op === "+" && old instanceof PyList) {
      const more = iterate(v, this.budget);
      this.budget.size(old.items.length + more.length);
      old.items.push(...more);
      return old;
    }
    if (op === "|" && old instanceof PyDict && v instanceof PyDict) {
      for (const [k, x] of v.map.values()) old.set(k, x);
      return old;
    }
    return binop(op, old, v, this.budget);
  }

  private del(target: Expr, scope: Scope): void {
    if (target.t === "name") {
      if (!scope.vars.delete(target.id))
        throw new PyException("NameError", `name '${target.id}' is not defined`);
    } else if (target.t === "subscript") {
      delItem(this.eval(target.value, scope), this.index(target.index, scope));
    } else if (target.t === "tuple" || target.t === "list") {
      for (const t of target.elts) this.del(t, scope);
    } else throw new RestrictedError("unsupported", `del of ${target.t} is`, this.file, target.line);
  }
}
