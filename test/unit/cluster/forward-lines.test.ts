import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { MAX_HELD_LINE_CHARS, forwardLines } from "../../../src/cluster/forward-lines.js";

// Issue 11: the primary passes each worker's output on in whole lines, so that lines of
// different workers never mix on stdout, however the pipe cuts them.

async function forwarded(chunks: readonly Buffer[]): Promise<string[]> {
  const stream = new PassThrough();
  const writes: string[] = [];
  forwardLines(stream, { write: (text) => writes.push(text) });
  const ended = new Promise((resolve) => stream.on("end", resolve));
  for (const chunk of chunks) stream.write(chunk);
  stream.end();
  await ended;
  return writes;
}

const bytes = (text: string) => Buffer.from(text, "utf8");

describe("forwardLines", () => {
  it.each([
    ["whole lines", [bytes('{"a":1}\n{"b":2}\n')], ['{"a":1}\n{"b":2}\n']],
    ["a line cut in two", [bytes('{"a":1}\n{"b"'), bytes(":2}\n")], ['{"a":1}\n', '{"b":2}\n']],
    ["a line in three pieces", [bytes('{"a"'), bytes(":"), bytes("1}\n")], ['{"a":1}\n']],
    ["a last line without newline", [bytes('{"a":1}\n{"b":2}')], ['{"a":1}\n', '{"b":2}\n']],
    ["a character cut between its bytes", [Buffer.from([0x7b, 0xc3]), Buffer.from([0xa9, 0x7d, 0x0a])], ["{é}\n"]],
  ])("%s", async (_name, chunks, writes) => {
    expect(await forwarded(chunks)).toEqual(writes);
  });

  it("passes on a line longer than its bound in pieces instead of holding it", async () => {
    const long = "x".repeat(MAX_HELD_LINE_CHARS + 1);
    const writes = await forwarded([bytes(long), bytes("y\n")]);
    expect(writes).toEqual([`${long}\n`, "y\n"]);
  });
});
