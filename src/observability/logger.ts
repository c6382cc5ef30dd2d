import { type Logger, pino } from "pino";

/**
 * JSON logs on stdout (one object per line). Redaction is a safety net: no code path
 * logs headers or tokens, but if one ever did, these keys would never be printed.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: "scitokens-authz" },
      redact: {
        paths: ["token", "authorization", "headers.authorization", "*.authorization", "*.token"],
        censor: "[redacted]",
      },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/**
 * A child of `logger` without the redaction pass, for the one line every Check logs (the
 * decision line): its object is built field by field from values that cannot hold a
 * secret, and has none of the keys redaction censors, yet redaction would cost every
 * Check a pass over it. Everything else keeps the safety net.
 */
export function unredacted(logger: Logger): Logger {
  return logger.child({}, { redact: [] });
}

export type { Logger };
