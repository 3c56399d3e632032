/** Type declarations for text-table 0.2.0 (the package ships none). */
declare module 'text-table' {
  export default function textTable(rows: string[][], opts?: { hsep?: string; align?: ('l' | 'r' | 'c' | '.')[]; stringLength?: (s: string) => number }): string;
}
