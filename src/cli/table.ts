/**
 * Plain column tables as CBSD prints them (`column -t` style: no borders, two spaces
 * between columns), rendered with text-table (cli-table3 took 15 s for `jls` of 10,000 envs;
 * text-table about 0.1 s).
 */
import textTable from 'text-table';

/** Renders rows under an upper-case header (omitted when `header` is false). Empty cells print `-`. */
export function renderTable(head: string[], rows: (string | number)[][], header = true): string {
  const body = rows.map((r) => r.map((c) => (c === '' || c === undefined || c === null ? '-' : String(c))));
  return textTable(header ? [head.map((h) => h.toUpperCase()), ...body] : body);
}
