/** What jregister and junregister share. */

/**
 * Envs registered (or unregistered) at once by one glob command. Each env's work is mostly
 * waiting on the shared storage (lease create, descriptor fsync), so a few run side by side,
 * as CBSD queues one task per env (§6.1); results keep the name order.
 */
export const REGISTER_CONCURRENCY = 8;
