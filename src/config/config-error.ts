/**
 * A configuration or policy-data file that cannot be used. Carries every problem found
 * (not only the first), each naming the file, the key and what was expected, so an
 * operator can fix a file in one pass. A ConfigError never replaces a running config.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(`${file}: ${problems.length === 1 ? problems[0] : `${problems.length} problems:\n  - ${problems.join("\n  - ")}`}`);
  }
}
