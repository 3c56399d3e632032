// Loaded with NODE_OPTIONS=--import=<this file> by the FreeBSD transcript tests: points
// process.execPath at the `node` stand-in of this directory, so that tinyexec's PATH
// (dirname(process.execPath) first) finds the fake FreeBSD tools before /usr/bin.
// Processes berth spawns with process.execPath (the run monitor) go through the stand-in.
import { fileURLToPath } from 'node:url';
process.execPath = fileURLToPath(new URL('./node', import.meta.url));
