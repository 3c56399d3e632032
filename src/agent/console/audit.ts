/**
 * The console's audit log, `var/log/audit.log`: one JSON line (pino, src/log.ts's library) per
 * action asked for through the console: `who` (the token id and role), `what` (the action and
 * its env, destination ...), `time` (pino's, unix ms) and `result` (ok, refused, or the exit
 * code and error code of the library call), plus the client's address. Logins and failed
 * logins are written too.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

/** One audit entry. */
export interface AuditEntry {
  who: { token: string; role: string } | null;
  what: string;
  jname?: string;
  detail?: Record<string, unknown>;
  result: 'ok' | 'refused' | 'failed';
  exitCode?: number;
  code?: string;
  message?: string;
  client?: string;
}

/** Writes audit entries to `file`. */
export class AuditLog {
  private constructor(private readonly logger: Logger, private readonly dest: { flushSync(): void; end(): void }) {}

  static async open(file: string): Promise<AuditLog> {
    mkdirSync(dirname(file), { recursive: true });
    const { pino } = await import('pino');
    const dest = pino.destination({ dest: file, sync: true, mkdir: true, mode: 0o600 } as Parameters<typeof pino.destination>[0]);
    return new AuditLog(pino({ base: { component: 'console' }, messageKey: 'msg' }, dest), dest);
  }

  write(e: AuditEntry): void {
    this.logger.info(e, 'audit');
  }

  close(): void {
    try { this.dest.flushSync(); } catch { /* closed */ }
  }
}
