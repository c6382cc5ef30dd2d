import { randomUUID } from "node:crypto";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * Writes `body` to `file` readable by the owner only (0600), atomically: a temporary
 * file in the same folder, flushed, then renamed over the target, so a reader sees the
 * old or the new content, never half of one. Creates the folder (0700) when missing.
 * For files holding keys: the development issuer's state, the JWKS disk cache.
 */
export async function writePrivateFile(file: string, body: string | Uint8Array): Promise<void> {
  const folder = dirname(file);
  await mkdir(folder, { recursive: true, mode: 0o700 });
  const temp = join(folder, `.${basename(file)}.${process.pid}.${randomUUID()}.tmp`);
  try {
    const handle = await open(temp, "wx", 0o600);
    try {
      await handle.writeFile(body, typeof body === "string" ? "utf8" : null);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
