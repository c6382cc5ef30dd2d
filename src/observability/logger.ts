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

export type { Logger };
