import { ConfigError, HeraldError } from "../errors.js";
import { EXIT, UsageError } from "./args.js";

/** A CLI command: its arguments after the command name in, an exit code out. */
export type Command = (argv: string[]) => Promise<number>;

/** User mistakes get one clear line and an exit code; only real bugs show a stack trace. */
export function reportError(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`herald: ${err.message}\n`);
    return EXIT.usage;
  }
  if (err instanceof ConfigError) {
    process.stderr.write(`herald: configuration error: ${err.message}\n`);
    return EXIT.config;
  }
  if (err instanceof HeraldError) {
    process.stderr.write(`herald: ${err.code}: ${err.message}\n`);
    if (err.code === "NO_BROKER" || err.code === "TIMEOUT") return EXIT.unavailable;
    return EXIT.failed;
  }
  const fileProblem = describeFileError(err);
  if (fileProblem !== undefined) {
    process.stderr.write(`herald: ${fileProblem}\n`);
    return EXIT.failed;
  }
  process.stderr.write(`herald: internal error (please report): ${(err as Error)?.stack ?? String(err)}\n`);
  return EXIT.failed;
}

const FS_WORDS: Readonly<Record<string, string>> = {
  ENOENT: "no such file or directory",
  ENOTDIR: "a part of the path is not a directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EISDIR: "it is a directory",
  EEXIST: "it already exists",
  EROFS: "the file system is read-only",
  ENOSPC: "no space left on the device",
};

/** A file the user named (flag or configuration) that cannot be used: one line naming it, no stack. */
function describeFileError(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException;
  if (!(err instanceof Error) || typeof e.code !== "string" || typeof e.path !== "string") return undefined;
  const words = FS_WORDS[e.code];
  if (words === undefined) return undefined;
  return `cannot ${e.syscall ?? "use"} ${e.path}: ${words} (${e.code}); check the path and its permissions`;
}

/** Run `command` with what it throws reported here, so its error classes are the ones checked. */
export async function runCommand(command: Command, argv: string[]): Promise<number> {
  try {
    return await command(argv);
  } catch (err) {
    return reportError(err);
  }
}

/** The process's exit code from a CLI run; the process ends when its work does. */
export function finish(run: Promise<number>): void {
  run.then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`herald: ${String(err)}\n`);
      process.exitCode = EXIT.failed;
    },
  );
}
