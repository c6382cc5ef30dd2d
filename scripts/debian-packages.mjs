// Installs the Debian packages a script needs, when they are missing: with apt-get, as root
// or through passwordless sudo; a failed install is retried once after `apt-get update`.
// Used by scripts/test.mjs (the packages of `npm test`) and scripts/scitokens-cpp-differential.mjs
// (scitokens-cpp's build dependencies). Exits the process with a clear message when a package
// cannot be installed, naming the package so that the user can install it by hand.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

function onPath(name) {
  return spawnSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" }).status === 0;
}

/** Whether dpkg records `pkg` as installed (false where there is no dpkg). */
function dpkgInstalled(pkg) {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
  const r = spawnSync("dpkg-query", ["-W", "-f=${db:Status-Status}", pkg], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() === "installed";
}

/**
 * Whether a need is met. `what` is a command looked up on PATH, an absolute path (say, a
 * header), or absent: then dpkg must list the package as installed.
 */
function present({ pkg, what }) {
  if (what === undefined) return dpkgInstalled(pkg);
  return what.startsWith("/") ? existsSync(what) : onPath(what);
}

/**
 * Installs the packages of `needs` ({ pkg, what? }) that are not present, in one apt-get
 * call. `prefix` starts every message (e.g. "test"); `why` says what they are for.
 */
export function ensureDebianPackages(needs, { prefix, why }) {
  const missing = needs.filter((need) => !present(need));
  if (missing.length === 0) return;
  const names = [...new Set(missing.map((need) => need.pkg))];
  const fail = (message) => {
    process.stderr.write(`${prefix}: ${message}\n`);
    process.exit(1);
  };
  if (!onPath("apt-get")) fail(`${why} needs the Debian package(s) ${names.join(", ")} and apt-get is not available: install them`);
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!asRoot && !onPath("sudo"))
    fail(`${why} needs the Debian package(s) ${names.join(", ")}: run as root, or install them (apt-get install ${names.join(" ")})`);
  const aptGet = (args, stdio) => {
    const [command, ...rest] = asRoot ? ["apt-get", ...args] : ["sudo", "-n", "apt-get", ...args];
    return spawnSync(command, rest, { stdio, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } }).status === 0;
  };
  const install = () => aptGet(["install", "-y", "-q", ...names], ["ignore", "ignore", "inherit"]);
  process.stderr.write(`${prefix}: installing Debian package(s) ${names.join(", ")} (${why})\n`);
  if (install() && missing.every(present)) return;
  aptGet(["update", "-q"], ["ignore", "ignore", "inherit"]);
  if (!install() || !missing.every(present)) fail(`could not install ${names.join(", ")}; install them (apt-get install ${names.join(" ")}) and run again`);
}
