// The README's error table and the catalogue in shared/errors.ts list the same codes.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorCodes } from '../shared/errors.js';

const readme = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md'), 'utf8');

t.test('README error table matches the catalogue', async (t) => {
  const section = readme.split('### Errors')[1]?.split('\n## ')[0] ?? '';
  const documented = [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
  t.same([...documented].sort(), [...errorCodes].sort());
});
