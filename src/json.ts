// Comparing JSON documents by meaning. The API server stores custom resources as maps and hands
// them back with sorted keys, while we build objects in our own order: comparing JSON.stringify
// of the two would see a difference where there is none (and write again, forever).

/** JSON with every object's keys sorted (undefined values dropped, as JSON.stringify does). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]))
      : v,
  );
}

/** Whether two values are the same JSON document, whatever the order of their keys. */
export const sameJson = (a: unknown, b: unknown): boolean => canonicalJson(a) === canonicalJson(b);
