import type { Readable } from "node:stream";

/** A worker's output line longer than this is passed on cut rather than held. */
export const MAX_HELD_LINE_CHARS = 1024 * 1024;

/** Where the workers' output goes, whole lines at a time. */
export interface LineSink {
  write(text: string): unknown;
}

/**
 * Passes `stream`'s text on to `sink` in whole lines (a last line without newline gets
 * one): what a worker writes reaches the primary's stdout cut only between lines, never
 * inside one, whatever the pipe's chunks (a line longer than MAX_HELD_LINE_CHARS is
 * passed on in pieces rather than held).
 */
export function forwardLines(stream: Readable | null, sink: LineSink): void {
  if (stream === null) return;
  let held = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    const text = held + chunk;
    const end = text.lastIndexOf("\n");
    if (end === -1) {
      held = text;
      if (held.length > MAX_HELD_LINE_CHARS) {
        sink.write(`${held}\n`);
        held = "";
      }
      return;
    }
    sink.write(text.slice(0, end + 1));
    held = text.slice(end + 1);
  });
  stream.on("end", () => {
    if (held !== "") sink.write(`${held}\n`);
  });
}
