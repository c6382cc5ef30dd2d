import { lstat, stat, unlink } from "node:fs/promises";
import { connect } from "node:net";
import { dirname } from "node:path";
import type { Logger } from "pino";

/** Why a Unix socket path cannot be listened on (a configuration problem of `grpc.listen`). */
export class SocketPathError extends Error {
  override readonly name = "SocketPathError";
}

/**
 * Makes `path` free for a Unix domain socket listener, or says why it cannot be. A
 * socket file nobody listens on (left by a process that crashed or was killed) is
 * removed, with a warning; a socket another process serves on, a file that is not a
 * socket, and a missing folder are errors: nothing else is ever deleted.
 */
export async function claimSocketPath(path: string, logger: Logger): Promise<void> {
  const where = `cannot listen on unix:${path}`;
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOENT") throw new SocketPathError(`${where}: cannot examine the path (${code ?? String(error)})`);
    const folder = dirname(path);
    const isFolder = await stat(folder).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (!isFolder) throw new SocketPathError(`${where}: the folder ${folder} does not exist (create it, owned by the service's user)`);
    return;
  }
  if (!isSocket) throw new SocketPathError(`${where}: a file that is not a socket is there (remove it, or listen elsewhere)`);
  const answer = await probe(path);
  if (answer === "listening") throw new SocketPathError(`${where}: another process is serving on this socket (is the service already running?)`);
  if (answer !== "ECONNREFUSED") throw new SocketPathError(`${where}: cannot examine the socket that is there (${answer})`);
  await unlink(path);
  logger.warn({ socket: path }, `removed the stale socket file ${path} (left by an earlier run: nothing was listening on it)`);
}

/** Connects to the socket at `path`: "listening", or the error code (ECONNREFUSED: nobody listens). */
function probe(path: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    socket.once("connect", () => {
      socket.destroy();
      resolve("listening");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}
