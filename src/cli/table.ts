/**
 * Plain column tables as CBSD prints them (`column -t` style: no borders, two spaces
 * between columns), rendered with cli-table3.
 */
import Table from 'cli-table3';

const NONE = { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ' };

/** Renders rows under an upper-case header (omitted when `header` is false). Empty cells print `-`. */
export function renderTable(head: string[], rows: (string | number)[][], header = true): string {
  const t = new Table({ chars: NONE, style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 } });
  if (header) t.push(head.map((h) => h.toUpperCase()));
  for (const r of rows) t.push(r.map((c) => (c === '' || c === undefined || c === null ? '-' : String(c))));
  return t.toString().split('\n').map((l) => l.trimEnd()).join('\n');
}
