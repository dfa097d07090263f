import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real sockets and child processes: keep parallelism modest on 2 cores.
    maxWorkers: 2,
    pool: "forks",
    // Memory-flatness tests force a collection before measuring.
    execArgv: ["--expose-gc"],
  },
});
