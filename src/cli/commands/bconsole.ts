/**
 * `berth bconsole jname= [timeout=s] [until=regex] [log=0|1]`: attach to a running VM's serial
 * console (CBSD's blogin). On a terminal it is interactive (raw mode; Ctrl-] leaves). Otherwise
 * it prints what the console printed so far (var/log/<vm>.console.log; log=0 skips it), then
 * copies the console to stdout and stdin to the console until EOF, `timeout` seconds, or the
 * output matching `until` (scripts and tests). Thin handler over src/lifecycle/console.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { BerthError, EXIT, usageError } from '../../errors.js';
import { str, withNode } from '../args.js';
import { JNAME, o } from '../options.js';
import type { CmdDef } from '../types.js';

const DETACH = 0x1d; // Ctrl-]

export const command: CmdDef = {
  name: 'bconsole', aliases: ['blogin'], summary: 'attach to a running VM\'s serial console (Ctrl-] leaves)',
  options: [JNAME, o('timeout', 'leave after this many seconds (default: never on a terminal; until EOF otherwise)', 'seconds'),
    o('until', 'leave once the console output matches this regular expression (exit 0; at timeout exit 1)', 'regex'),
    o('log', '0: do not print what the console printed before attaching (not on a terminal)', '0|1')],
  positional: '[jname]',
  help: 'Example: berth bconsole jname=vm1 (interactive); berth bconsole jname=vm1 until=\'login:\' timeout=60 (scripts)',
  async handler(opts, args, io) {
    const jname = str(opts, 'jname') ?? args[0];
    if (!jname) throw usageError('E_NO_JNAME', 'bconsole needs jname=<vm>');
    const t = str(opts, 'timeout');
    if (t !== undefined && !/^\d+(\.\d+)?$/.test(t)) throw usageError('E_BAD_VALUE', `bad timeout=${JSON.stringify(t)}: expected seconds`);
    let until: RegExp | undefined;
    try { until = str(opts, 'until') ? new RegExp(str(opts, 'until')!) : undefined; } catch (e) { throw usageError('E_BAD_VALUE', `bad until=${JSON.stringify(str(opts, 'until'))}: ${(e as Error).message}`); }
    const { consoleOf } = await import('../../lifecycle/console.js');
    const ep = await withNode(opts, (ctx) => consoleOf(ctx, jname));
    const tty = !!process.stdin.isTTY && !!process.stdout.isTTY;
    if (ep.kind === 'tty') {
      // a terminal device (bhyve: the user's side of an nmdm(4) pair): cu(1) attaches to it, as CBSD's blogin
      const attach = ep.attach ?? ['cu', '-l', ep.path];
      if (!tty || until || t !== undefined) {
        throw usageError('E_NO_CONSOLE', `${jname}'s console is the terminal device ${ep.path}: berth attaches to it from a terminal only (no timeout=, until=)`, { hint: `run: berth bconsole jname=${jname} on a terminal, or ${attach.join(' ')}` });
      }
      const { runInteractive } = await import('../../proc.js');
      const code = await runInteractive(attach);
      if (code !== 0) throw new BerthError('E_ENGINE', `${attach.join(' ')} exited with ${code}`, EXIT.ENGINE);
      return { data: { jname, matched: false, timedOut: false }, text: '' };
    }
    let seen = '';
    const out = (b: Buffer | string) => {
      process.stdout.write(b);
      if (until) { seen = (seen + b.toString()).slice(-65536); return until.test(seen); }
      return false;
    };
    if (!tty && str(opts, 'log') !== '0' && ep.log && existsSync(ep.log) && out(readFileSync(ep.log))) return { data: { jname, matched: true }, text: '' };
    if (tty) io.note(`connected to ${jname}'s serial console (Ctrl-] leaves)`);
    const result = await new Promise<{ matched: boolean; timedOut: boolean }>((resolve, reject) => {
      const sock = createConnection(ep.path);
      let timer: NodeJS.Timeout | undefined;
      const onStdin = (d: Buffer) => {
        if (tty && d.includes(DETACH)) { finish(false, false); return; }
        sock.write(d);
      };
      const finish = (matched: boolean, timedOut: boolean) => {
        if (timer) clearTimeout(timer);
        process.stdin.off('data', onStdin);
        if (tty) process.stdin.setRawMode(false);
        process.stdin.pause();
        sock.destroy();
        resolve({ matched, timedOut });
      };
      if (t !== undefined) timer = setTimeout(() => finish(false, true), Number(t) * 1000);
      sock.once('error', (e) => { if (timer) clearTimeout(timer); reject(new BerthError('E_ENGINE', `cannot attach to ${jname}'s console ${ep.path}: ${e.message}`, EXIT.ENGINE)); });
      sock.on('data', (d: Buffer) => { if (out(d)) finish(true, false); });
      sock.on('end', () => finish(false, false));
      sock.once('connect', () => {
        if (tty) process.stdin.setRawMode(true);
        process.stdin.on('data', onStdin);
        process.stdin.resume();
      });
    });
    if (until && !result.matched) {
      throw new BerthError('E_CONSOLE_TIMEOUT', `${jname}'s console did not print ${until} ${result.timedOut ? `within ${t} s` : 'before it closed'}`, EXIT.FAILURE);
    }
    if (tty) io.note(`left ${jname}'s console`);
    return { data: { jname, ...result }, text: '' };
  },
};
