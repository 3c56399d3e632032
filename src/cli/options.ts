/** Option declarations shared by command modules (src/cli/commands/*). */
import type { OptDef } from './types.js';

/** An option taking a value: `key=value` (CBSD) or `--key value`. */
export const o = (key: string, desc: string, arg?: string): OptDef => ({ key, desc, arg });
/** A flag: `--force`, or `force=1` CBSD style. */
export const f = (key: string, desc: string): OptDef => ({ key, desc, flag: true });

/** `jname=`: one env, or a glob. */
export const JNAME = o('jname', "env name, or a glob such as 'web*'", 'jname');
