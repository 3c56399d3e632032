/**
 * Sizes as CBSD takes them: `vm_ram=1g`, `imgsize=10g`, or a plain number of bytes. CBSD
 * converts with `conv2bytes` (subr/tools.subr), which calls FreeBSD's expand_number(3):
 * a whole number, optionally followed by one unit letter k, m, g, t, p or e (either case,
 * powers of 1024), optionally followed by `b`. Fractions (`1.5g`) and signs are refused, as
 * expand_number refuses them. Values are stored in bytes, as CBSD writes them.
 */
import { usageError } from '../../errors.js';

const UNITS: Record<string, number> = { '': 0, k: 1, m: 2, g: 3, t: 4, p: 5, e: 6 };
const SIZE = /^(\d+)\s*([kmgtpe]?)b?$/i;

/**
 * Parses a size into bytes.
 * @param value the text, e.g. `536870912`, `512m`, `1G`, `10gb`
 * @param key the setting's name, for the error message
 * @returns bytes (a safe integer, >= 0)
 * @throws BerthError E_BAD_VALUE (exit 2) naming key and value: not a size, negative,
 *   a fraction, or larger than 2^53 bytes
 */
export function parseSize(value: string, key: string): number {
  const m = SIZE.exec(value.trim());
  const bad = (why: string) => usageError('E_BAD_VALUE', `bad ${key}=${JSON.stringify(value)}: ${why}`, {
    hint: `give bytes or a whole number with a unit, e.g. ${key}=512m or ${key}=1g (k, m, g, t: powers of 1024)`,
  });
  if (!m) {
    if (/^-/.test(value.trim())) throw bad('a size cannot be negative');
    if (/^\d*\.\d+/.test(value.trim())) throw bad('fractions are not accepted (as CBSD: expand_number(3))');
    throw bad('not a size');
  }
  const n = BigInt(m[1]!) * 1024n ** BigInt(UNITS[m[2]!.toLowerCase()]!);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('too large');
  return Number(n);
}

/**
 * Formats bytes for people: the largest unit that divides it exactly (`512m`, `1g`,
 * `1536m`), else bytes. The inverse of {@link parseSize} for every value.
 */
export function formatSize(bytes: number): string {
  for (const [u, p] of [['e', 6], ['p', 5], ['t', 4], ['g', 3], ['m', 2], ['k', 1]] as const) {
    const d = 1024 ** p;
    if (bytes >= d && bytes % d === 0) return `${bytes / d}${u}`;
  }
  return String(bytes);
}
