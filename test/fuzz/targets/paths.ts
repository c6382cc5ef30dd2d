/**
 * Fuzz target: the three path normalizers (SEMANTICS §6–§8) on the same input. None may
 * throw; whatever one accepts is a normal path (invariants.ts), normalizing it again
 * gives it back, and a path accepted in one role is accepted, unchanged, in the roles it
 * flows into (a scope path is matched against request paths and configured paths).
 */
import { type PathResult, normalizeConfiguredPath, normalizeRequestPath, normalizeScopePath } from "../../../src/paths/normalize.js";
import { ensure, ensureNormalPath, reencode, reencodeFully, samePath, show, total } from "../invariants.js";

type Accepted = Extract<PathResult, { ok: true }>;

function ensureSame(again: PathResult, first: Accepted, what: string, input: string): void {
  ensure(again.ok, `${what}: refused (${again.ok ? "" : again.why}) what was accepted as ${show(first.path)}`, input);
  ensure(again.ok && samePath(again, first), `${what}: ${show(again.ok ? again.path : null)} instead of ${show(first.path)}`, input);
}

function requestPath(raw: string): void {
  const result = total("normalizeRequestPath", () => normalizeRequestPath(raw), raw);
  if (!result.ok) return;
  ensureNormalPath(result, "request path", raw, true);
  const beforeQuery = raw.split("?", 1)[0] ?? "";
  ensure(!beforeQuery.includes("#"), "request path: accepted with a raw # (a fragment never reaches a server)", raw);
  ensure(beforeQuery.startsWith("/"), "request path: accepted without a leading /", raw);
  for (const again of [reencode(result.segments), reencodeFully(result.segments)]) {
    if (again !== null) ensureSame(normalizeRequestPath(again), result, `request path re-encoded as ${show(again)}`, raw);
  }
  // A decoded request path is a valid configured path: base paths are compared with it.
  ensureSame(normalizeConfiguredPath(result.path), result, "request path as a configured path", raw);
}

function scopePath(raw: string): void {
  const result = total("normalizeScopePath", () => normalizeScopePath(raw), raw);
  if (!result.ok) return;
  ensureNormalPath(result, "scope path", raw, true);
  ensure(!result.path.includes("%"), "scope path: a % remains after decoding", raw);
  ensureSame(normalizeScopePath(result.path), result, "scope path normalized again", raw);
  const request = reencode(result.segments);
  if (request !== null) ensureSame(normalizeRequestPath(request), result, `scope path sent as the request ${show(request)}`, raw);
  ensureSame(normalizeConfiguredPath(result.path), result, "scope path as a configured path", raw);
}

function configuredPath(raw: string): void {
  const result = total("normalizeConfiguredPath", () => normalizeConfiguredPath(raw), raw);
  if (!result.ok) return;
  ensureNormalPath(result, "configured path", raw, false);
  ensure(raw.startsWith("/"), "configured path: accepted without a leading /", raw);
  ensureSame(normalizeConfiguredPath(result.path), result, "configured path normalized again", raw);
}

export function fuzz(data: Buffer): void {
  const raw = data.toString("utf8");
  requestPath(raw);
  scopePath(raw);
  configuredPath(raw);
}
