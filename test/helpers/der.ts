/**
 * The few DER encodings (ITU-T X.690) that test certificates need: node:crypto parses
 * and signs certificates but does not build them. Structure only; every signature is
 * made by node:crypto.
 */

export function tagged(tag: number, ...content: Uint8Array[]): Buffer {
  const body = Buffer.concat(content);
  const length: number[] = [];
  for (let n = body.length; n > 0; n >>= 8) length.unshift(n & 0xff);
  const header = body.length < 0x80 ? [tag, body.length] : [tag, 0x80 | length.length, ...length];
  return Buffer.concat([Buffer.from(header), body]);
}

export const sequence = (...content: Uint8Array[]) => tagged(0x30, ...content);
export const set = (...content: Uint8Array[]) => tagged(0x31, ...content);
export const integer = (bigEndian: Uint8Array) => tagged(0x02, bigEndian);
export const boolean = (value: boolean) => tagged(0x01, Buffer.from([value ? 0xff : 0]));
export const octetString = (bytes: Uint8Array) => tagged(0x04, bytes);
export const utf8String = (text: string) => tagged(0x0c, Buffer.from(text, "utf8"));
/** A BIT STRING of whole bytes (no unused bits). */
export const bitString = (bytes: Uint8Array) => tagged(0x03, Buffer.from([0]), bytes);
/** `[n] EXPLICIT` around `content`. */
export const explicit = (n: number, ...content: Uint8Array[]) => tagged(0xa0 | n, ...content);

/** UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
export function time(date: Date): Buffer {
  const iso = date.toISOString(); // 2025-01-31T12:34:56.789Z
  const rest = `${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = date.getUTCFullYear();
  return year < 2050 ? tagged(0x17, Buffer.from(`${iso.slice(2, 4)}${rest}`, "ascii")) : tagged(0x18, Buffer.from(`${iso.slice(0, 4)}${rest}`, "ascii"));
}

export function objectId(dotted: string): Buffer {
  const [first, second, ...rest] = dotted.split(".").map(Number);
  const bytes = [40 * first! + second!];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let n = arc >>> 7; n > 0; n >>>= 7) chunk.unshift(0x80 | (n & 0x7f));
    bytes.push(...chunk);
  }
  return tagged(0x06, Buffer.from(bytes));
}
