/**
 * Plain column tables as CBSD prints them (`column -t` style: no borders, two spaces
 * between columns), rendered with text-table (cli-table3 took 15 s for `jls` of 10,000 envs;
 * text-table about 0.1 s).
 */
import textTable from 'text-table';

/**
 * A cell as it may reach a terminal: control characters (an escape sequence in a descriptor
 * on shared storage could rewrite the screen) are shown as `\xNN`.
 */
function cell(c: string | number | undefined | null): string {
  if (c === '' || c === undefined || c === null) return '-';
  return String(c).replace(/[\x00-\x1f\x7f-\x9f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * Renders rows under an upper-case header (omitted when `header` is false). Empty cells print
 * `-`; control characters print as `\xNN`.
 */
export function renderTable(head: string[], rows: (string | number)[][], header = true): string {
  const body = rows.map((r) => r.map(cell));
  return textTable(header ? [head.map((h) => h.toUpperCase()), ...body] : body);
}
