// Generates berth's man pages and shell completion from the command modules (the registry,
// src/cli/registry.ts, as tsc built it in dist/src/) with src/cli/docs.ts, into dist/share/:
//   man/man8/berth.8, man/man8/berth-<group>.8, bash-completion/completions/berth,
//   zsh/site-functions/_berth
// Run by `npm run build` after tsc; `make install` installs what it wrote.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const { COMMANDS } = await import(join(root, 'dist/src/cli/registry.js'));
const docs = await import(join(root, 'dist/src/cli/docs.js'));
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const out = join(root, 'dist', 'share');
rmSync(out, { recursive: true, force: true });
const put = (rel, text) => { const f = join(out, rel); mkdirSync(join(f, '..'), { recursive: true }); writeFileSync(f, text); };
for (const [file, text] of docs.manPages(COMMANDS, version)) put(join('man', 'man8', file), text);
put('bash-completion/completions/berth', docs.bashCompletion(COMMANDS));
put('zsh/site-functions/_berth', docs.zshCompletion(COMMANDS));
