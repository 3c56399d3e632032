/**
 * A lease "node" for race tests: a separate process (run as `node --import tsx
 * test/helpers/lease-worker.ts`) that reads one JSON request per line on stdin and answers one
 * JSON line on stdout. Long-lived, so that two workers can be told to act at the same
 * millisecond (`at`, epoch ms on this machine's clock) without process start-up jitter.
 *
 * Requests: `{id, op, lease, nodes, who, opts?, at?}` with op one of acquire | takeover |
 * handover (`to`) | release | check | read | heartbeat-start (`intervalMs`: this worker's node
 * heartbeat in `<nodes>/<node>/hb`) | heartbeat-stop. `lease` is the env's record dir,
 * `nodes` the ownership dir's `nodes/`.
 * Answers: `{id, ok: true, record?}` or `{id, ok: false, code, message, details?}`.
 */
import { createInterface } from 'node:readline';
import { BerthError } from '../../src/errors.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { acquireLease, checkLease, handoverLease, readLease, releaseLease, takeoverLease } from '../../src/ownership/record.js';
import { newBootId, readNodeBeatRaw, writeNodeBeat } from '../../src/ownership/heartbeat.js';

export interface WorkerRequest {
  id: number;
  op: 'acquire' | 'takeover' | 'handover' | 'release' | 'check' | 'read' | 'heartbeat-start' | 'heartbeat-stop';
  lease: string;
  nodes: string;
  who: { node: string; uuid: string; generation?: number };
  /** takeover: watch the holder node's heartbeat for ttlSec */
  opts?: { ttlSec: number; force: boolean; pollMs?: number };
  /** handover: the destination node */
  to?: string;
  intervalMs?: number;
  at?: number;
}

export interface WorkerAnswer {
  id: number;
  ok: boolean;
  record?: unknown;
  code?: string;
  message?: string;
  details?: Record<string, unknown>;
}

let beat: NodeJS.Timeout | undefined;
/** the beat being written, if any (heartbeat-stop waits for it) */
let inflight: Promise<unknown> = Promise.resolve();
const boot = newBootId();
let counter = 0;
const beatFile = (nodes: string, node: string) => join(nodes, node, 'hb');
async function writeBeat(req: WorkerRequest): Promise<void> {
  mkdirSync(join(req.nodes, req.who.node), { recursive: true });
  await writeNodeBeat(beatFile(req.nodes, req.who.node), { node: req.who.node, boot, counter: ++counter, leaseTtl: 1 });
}

async function waitUntil(at: number | undefined): Promise<void> {
  if (!at) return;
  const coarse = at - Date.now() - 3;
  if (coarse > 0) await new Promise((r) => setTimeout(r, coarse));
  while (Date.now() < at) { /* spin the last few ms for a tight start */ }
}

async function handle(req: WorkerRequest): Promise<unknown> {
  const gen = { node: req.who.node, uuid: req.who.uuid, generation: req.who.generation ?? 0 };
  switch (req.op) {
    case 'acquire': return acquireLease(req.lease, req.who);
    case 'takeover': {
      const o = req.opts ?? { ttlSec: 1, force: true };
      return takeoverLease(req.lease, req.who, { force: o.force, pollMs: o.pollMs, beat: (node) => readNodeBeatRaw(beatFile(req.nodes, node)), watchSec: async () => o.ttlSec });
    }
    case 'handover': return handoverLease(req.lease, gen, { node: req.to ?? '', uuid: req.who.uuid });
    case 'release': return releaseLease(req.lease, gen);
    case 'check': return checkLease(req.lease, gen);
    case 'read': return readLease(req.lease);
    case 'heartbeat-start':
      if (beat) clearInterval(beat);
      await writeBeat(req);
      beat = setInterval(() => { inflight = writeBeat(req).catch(() => undefined); }, req.intervalMs ?? 300);
      return undefined;
    case 'heartbeat-stop':
      // silent from the answer on: no beat still being written after it
      if (beat) clearInterval(beat);
      beat = undefined;
      await inflight;
      return undefined;
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  const req = JSON.parse(line) as WorkerRequest;
  void (async () => {
    let ans: WorkerAnswer;
    try {
      await waitUntil(req.at);
      ans = { id: req.id, ok: true, record: await handle(req) };
    } catch (e) {
      const b = e instanceof BerthError ? e : undefined;
      ans = { id: req.id, ok: false, code: b?.code ?? 'E_UNEXPECTED', message: (e as Error).message, details: b?.details };
    }
    process.stdout.write(JSON.stringify(ans) + '\n');
  })();
});
rl.on('close', () => { if (beat) clearInterval(beat); });
