import { lstatSync, unlinkSync } from "node:fs";

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
