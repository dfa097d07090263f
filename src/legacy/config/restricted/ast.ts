/** The slice of Python's AST the restricted evaluator understands. */

export type Const = null | boolean | bigint | number | string | { bytes: string };

export interface Comprehension {
  target: Expr;
  iter: Expr;
  ifs: Expr[];
}

export type Arg =
  | { kind: "pos"; value: Expr }
  | { kind: "star"; value: Expr }
  | { kind: "kw"; name: string; value: Expr }
  | { kind: "dstar"; value: Expr };

export type Expr = { line: number } & (
  | { t: "const"; v: Const }
  | { t: "name"; id: string }
  | { t: "list" | "tuple" | "set"; elts: Expr[] }
  | { t: "dict"; items: Array<{ k: Expr | null; v: Expr }> }
  | { t: "star"; value: Expr }
  | { t: "boolop"; op: "and" | "or"; values: Expr[] }
  | { t: "not"; operand: Expr }
  | { t: "unary"; op: "-" | "+" | "~"; operand: Expr }
  | { t: "binop"; op: string; left: Expr; right: Expr }
  | { t: "compare"; left: Expr; ops: string[]; comparators: Expr[] }
  | { t: "ifexp"; test: Expr; body: Expr; orelse: Expr }
  | { t: "call"; func: Expr; args: Arg[] }
  | { t: "attr"; value: Expr; attr: string }
  | { t: "subscript"; value: Expr; index: Expr }
  | { t: "slice"; lower: Expr | null; upper: Expr | null; step: Expr | null }
  | { t: "comp"; kind: "list" | "set" | "gen" | "dict"; elt: Expr; value: Expr | null; gens: Comprehension[] }
);

export interface Handler {
  /** Exception class names; null = bare `except:`. */
  types: string[] | null;
  name: string | null;
  body: Stmt[];
  line: number;
}

export type Stmt = { line: number } & (
  | { t: "expr"; value: Expr }
  | { t: "assign"; targets: Expr[]; value: Expr }
  | { t: "augassign"; target: Expr; op: string; value: Expr }
  | { t: "if"; test: Expr; body: Stmt[]; orelse: Stmt[] }
  | { t: "for"; target: Expr; iter: Expr; body: Stmt[]; orelse: Stmt[] }
  | { t: "try"; body: Stmt[]; handlers: Handler[]; orelse: Stmt[]; finalbody: Stmt[] }
  | { t: "import"; names: Array<{ module: string; asname: string | null }> }
  | { t: "from"; module: string; names: Array<{ name: string; asname: string | null }> }
  | { t: "pass" | "break" | "continue" }
  | { t: "del"; targets: Expr[] }
);
