import { BlockList, isIP } from "node:net";

const loopback = new BlockList();
loopback.addSubnet("127.0.0.0", 8, "ipv4");
loopback.addAddress("::1", "ipv6");

/**
 * True for the loopback hosts of SEMANTICS §3: 127.0.0.0/8, ::1 (also IPv4-mapped
 * forms, and `[::1]`) and `localhost`. Names other than `localhost` are never resolved.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (bare.toLowerCase() === "localhost") return true;
  const family = isIP(bare);
  if (family === 4) return loopback.check(bare, "ipv4");
  if (family === 6) return loopback.check(bare, "ipv6");
  return false;
}

/** `host` as written in a URL authority: IPv6 literals get brackets. */
export function hostForUrl(host: string): string {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  return isIP(bare) === 6 ? `[${bare}]` : bare;
}
