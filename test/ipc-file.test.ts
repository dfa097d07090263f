import { existsSync, mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ownSocketFile, removeOwnSocketFile } from "../src/util/ipc-file.js";

const dir = mkdtempSync(join(tmpdir(), "herald-ipc-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function listen(path: string): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(path, () => resolve(s));
  });
}

describe("the socket file a broker bound", () => {
  it("is removed by the process that bound it, and only while it is the same file", async () => {
    const path = join(dir, "submit.sock");
    const first = await listen(path);
    const mine = ownSocketFile(`ipc://${path}`);
    expect(mine?.path).toBe(path);
    // Another process took the path over: a new socket file (new inode) that is not ours to remove.
    unlinkSync(path);
    const second = await listen(path);
    removeOwnSocketFile(mine!);
    expect(existsSync(path)).toBe(true);
    const theirs = ownSocketFile(`ipc://${path}`);
    expect(theirs?.ino).not.toBe(mine?.ino);
    removeOwnSocketFile(theirs!);
    expect(existsSync(path)).toBe(false);
    first.close();
    second.close();
  });

  it("is nothing to remember for tcp endpoints or paths that are not sockets", () => {
    expect(ownSocketFile("tcp://127.0.0.1:9939")).toBeUndefined();
    expect(ownSocketFile(`ipc://${dir}`)).toBeUndefined();
    expect(ownSocketFile(`ipc://${join(dir, "absent.sock")}`)).toBeUndefined();
  });
});
