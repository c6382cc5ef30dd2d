/** Seed of a run unless `DIFF_SEED` says otherwise; the figures in the README are for it. */
export const DEFAULT_SEED = 20250611;

/**
 * The seed of this run: `DIFF_SEED` (a 32-bit integer, or any text, which is hashed), else
 * {@link DEFAULT_SEED}. The run prints it so that any failure can be replayed.
 */
export function seedFromEnv(value: string | undefined = process.env["DIFF_SEED"]): number {
  if (value === undefined || value.trim() === "") return DEFAULT_SEED;
  const text = value.trim();
  if (/^\d+$/.test(text) && Number(text) <= 0xffffffff) return Number(text);
  let hash = 2166136261; // FNV-1a
  for (const char of text) {
    hash ^= char.codePointAt(0) ?? 0;
    hash = Math.imul(hash, 16777619) >>> 0;
  }
  return hash;
}

/** A small deterministic generator (sfc32): the same seed always yields the same cases. */
export class SeededRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.next();
  }

  /** A float in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick from an empty list");
    return items[this.below(items.length)] as T;
  }

  /** Picks a value by weight: `[[weight, value], ...]`. */
  weighted<T>(table: ReadonlyArray<readonly [number, T]>): T {
    const total = table.reduce((sum, [weight]) => sum + weight, 0);
    let roll = this.next() * total;
    for (const [weight, value] of table) {
      roll -= weight;
      if (roll < 0) return value;
    }
    const last = table[table.length - 1];
    if (last === undefined) throw new RangeError("weighted pick from an empty table");
    return last[1];
  }
}
