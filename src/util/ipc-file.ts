import { lstatSync, unlinkSync } from "node:fs";
import { connect } from "node:net";
import { HeraldError } from "../errors.js";

/** A socket file this process bound, remembered by inode so that only that very file is removed. */
export interface OwnSocketFile {
  path: string;
  ino: number;
}

/** The socket file behind an ipc:// endpoint just bound, or undefined for other transports. */
export function ownSocketFile(endpoint: string): OwnSocketFile | undefined {
  if (!endpoint.startsWith("ipc://")) return undefined;
  const path = endpoint.slice("ipc://".length);
  try {
    const st = lstatSync(path);
    return st.isSocket() ? { path, ino: st.ino } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Remove a socket file this process bound, after closing its socket. zeromq.js closes sockets on its I/O
 * thread, and a process that exits right after may leave the file behind: then a client finds the file,
 * connects to nobody and waits out its timeouts and retries (10 s by default) instead of failing at
 * once with "no broker". A file rebound by another process since (another inode) is left alone.
 */
export function removeOwnSocketFile(file: OwnSocketFile): void {
  try {
    const st = lstatSync(file.path);
    if (st.isSocket() && st.ino === file.ino) unlinkSync(file.path);
  } catch {
    // already gone
  }
}

/**
 * Whether a process listens on the socket file behind an ipc:// endpoint. libzmq binding an ipc://
 * path unlinks whatever file is there: a second broker would take the first one's socket silently (its
 * clients then reach the newcomer, and the old broker, still running, none). A file nobody listens on
 * (left by a crash) refuses the connection.
 */
export function ipcInUse(endpoint: string, timeoutMs = 1000): Promise<boolean> {
  if (!endpoint.startsWith("ipc://")) return Promise.resolve(false);
  const path = endpoint.slice("ipc://".length);
  return new Promise((resolve) => {
    const sock = connect(path);
    const done = (inUse: boolean): void => {
      sock.destroy();
      resolve(inUse);
    };
    sock.setTimeout(timeoutMs, () => done(true)); // a listener too busy to accept is still a listener
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });
}

/**
 * Throw unless every ipc:// endpoint of `endpoints` is free (others are not checked). Run before binding
 * any of them: libzmq unlinks the file of a running broker's socket when another one binds its path, and
 * that broker, still running, is then unreachable there. `key` names the setting to change.
 */
export async function refuseIpcInUse(
  endpoints: readonly string[],
  key: (endpoint: string) => string,
): Promise<void> {
  for (const endpoint of endpoints) {
    if (!(await ipcInUse(endpoint))) continue;
    throw new HeraldError(
      "TRANSPORT",
      `cannot listen on ${endpoint}: another herald serve is listening there; stop it, or give this one another paths.runtimeDir (or ${key(endpoint)})`,
    );
  }
}
