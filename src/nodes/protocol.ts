/**
 * The bodies of the agent API's requests (src/agent/api.ts serves them, src/nodes/client.ts
 * sends them), checked with zod: strict objects, unknown keys refused.
 */
import { z } from 'zod';

/** Body of POST /v1/envs/:jname/register. */
export const RegisterBody = z.strictObject({
  /** take the lease over from a silent owner (waits lease_ttl seconds) */
  force: z.boolean().optional(),
  /** storage hooks overriding the descriptor's (absolute paths or '0') */
  mnt_start: z.string().max(4096).optional(),
  mnt_stop: z.string().max(4096).optional(),
  /** leave the storage mounted after registering: a start follows at once (jmigrate) */
  keep_storage: z.boolean().optional(),
});
export type RegisterBody = z.infer<typeof RegisterBody>;

/** Body of POST /v1/envs/:jname/start and /stop. */
export const RunBody = z.strictObject({
  /** the command family that asks (jstart: j, bstart: b): an env of the other family is refused as the CLI refuses it */
  family: z.enum(['j', 'b']).optional(),
});
export type RunBody = z.infer<typeof RunBody>;

/** Body of POST /v1/envs/:jname/prepare. */
export const PrepareBody = z.strictObject({
  /** the env's uuid at the source: the destination must see the same env */
  uuid: z.string().max(64).optional(),
  /** mount the env's storage ahead (mnt_start + identity check) */
  mount: z.boolean().optional(),
  /** sha256 of the descriptor text in the env's ownership record as the source reads it: the destination waits until it reads that version */
  digest: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});
export type PrepareBody = z.infer<typeof PrepareBody>;

/** Body of POST /v1/envs/:jname/adopt. */
export const AdoptBody = z.strictObject({
  /** the generation the source handed over to this node */
  generation: z.number().int().positive(),
  /** start it once adopted */
  start: z.boolean().optional(),
  /** a prepare with mount ran: the storage is mounted */
  mounted: z.boolean().optional(),
  /** on failure, hand the lease back to this node (the source) */
  return_to: z.string().max(64).optional(),
  /** a live migration: the env already runs here (paused, POST incoming), as run `running_jid` */
  running_jid: z.number().int().positive().optional(),
  /** as PrepareBody.digest, for an adopt without a prepare's mount */
  digest: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});
export type AdoptBody = z.infer<typeof AdoptBody>;

/**
 * The HTTP Upgrade token of the live migration channel: `GET /v1/envs/:jname/migration` with
 * `Connection: Upgrade`, `Upgrade: berth-migration` and the node's bearer token becomes, after
 * `101 Switching Protocols`, the byte stream of the env's running state (src/agent/stream.ts
 * serves it, src/nodes/stream.ts opens it).
 */
export const STREAM_PROTOCOL = 'berth-migration';
