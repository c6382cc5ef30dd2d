/**
 * Whether `work` settles within `ms` milliseconds: resolves `true` as soon as it does,
 * `false` once `ms` have passed (at once when `ms` is 0). `work` goes on either way, so
 * a caller can stop waiting for a key fetch without cancelling it. The timer is cleared
 * when `work` settles first, so a short wait leaves nothing behind.
 */
export function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  if (!(ms > 0)) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const settled = () => {
      clearTimeout(timer);
      resolve(true);
    };
    work.then(settled, settled);
  });
}
