/**
 * jmigrate moves of a running env between two test nodes, and where their downtime goes (shared
 * by bench/migrate.ts and bench/ceph.ts). The numbers are jmigrate --json's own: downtimeMs
 * (the env not running anywhere) and its steps (stop, handover, adopt, with their inner timings).
 */
import type { TestNode } from '../test/integration/cluster-twonode.js';

/** One jmigrate --json `migration` result (the fields the benchmarks read). */
export interface Move {
  downtimeMs: number;
  totalMs: number;
  timings: { stop: { step: string; ms: number }[]; adopt: { step: string; ms: number }[] };
  steps: { step: string; node?: string; ms: number }[];
}

/** The median of a list of numbers. */
export const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** jmigrate of a running env from n1 to node2 and back, `rounds` times: the moves (2 per round). */
export function moves(n1: TestNode, n2: TestNode, jname: string, rounds: number): Move[] {
  const out: Move[] = [];
  for (let i = 0; i < rounds; i++) {
    out.push(n1.ok(['jmigrate', `jname=${jname}`, 'dst=node2', '--json'], 600_000).json.migration);
    out.push(n2.ok(['jmigrate', `jname=${jname}`, 'dst=node1', '--json'], 600_000).json.migration);
  }
  return out;
}

/**
 * The median move's downtime, step by step (ms). The downtime runs from the start of the stop
 * on the source to the destination's answer to adopt: the source's stop steps up to its
 * `while down` step, then `while down` itself, which is the switch-over (handover of the lease,
 * then adopt on the destination: its request, checks and start); the source's `engine cleanup`
 * comes after, outside the downtime.
 */
export function whereItGoes(ms: Move[]): string {
  const m = [...ms].sort((a, b) => a.downtimeMs - b.downtimeMs)[Math.floor(ms.length / 2)]!;
  const step = (n: string) => m.steps.find((s) => s.step === n)?.ms ?? 0;
  const inner = (l: { step: string; ms: number }[]) => l.map((s) => `${s.step} ${s.ms}`).join(', ');
  const w = m.timings.stop.findIndex((s) => s.step === 'while down');
  if (w < 0) return `stop ${step('stop')} ms [${inner(m.timings.stop)}] + handover ${step('handover')} ms + adopt (request, checks, start) ${step('adopt')} ms [${inner(m.timings.adopt)}]`;
  const before = m.timings.stop.slice(0, w);
  const sum = (l: { ms: number }[]) => Math.round(l.reduce((t, s) => t + s.ms, 0));
  const adoptInner = sum(m.timings.adopt);
  return `downtime ${m.downtimeMs} ms = source stop up to the switch-over ${sum(before)} ms [${inner(before)}]`
    + ` + switch-over ${m.timings.stop[w]!.ms} ms (handover ${step('handover')} ms + adopt ${step('adopt')} ms: destination's steps ${adoptInner} ms [${inner(m.timings.adopt)}], request and answer ${Math.round(step('adopt') - adoptInner)} ms)`
    + `; after it, outside the downtime: ${inner(m.timings.stop.slice(w + 1)) || 'nothing'}`;
}
