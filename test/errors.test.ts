// The README's error table and the catalogue in shared/errors.ts list the same codes.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorCodes, isErrorCode } from '../shared/errors.js';
import { exitCodeOf, exitCodes } from '../cli/exit-codes.js';

const readme = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md'), 'utf8');

t.test('README error table matches the catalogue', async (t) => {
  const section = readme.split('### Errors')[1]?.split('\n## ')[0] ?? '';
  const documented = [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
  t.same([...documented].sort(), [...errorCodes].sort());
});

t.test("README exit-code table: every code it names exits as it says, and the table lists every exit code", async (t) => {
  const section = readme.split('### Exit codes')[1]?.split('\n### ')[0] ?? '';
  const rows = [...section.matchAll(/^\| (\d+) \| (.*) \|$/gm)].map((m) => ({ exit: Number(m[1]), text: m[2]! }));
  t.same(rows.map((r) => r.exit), [...new Set(Object.values(exitCodes))].sort((a, b) => a - b), 'one row per exit code');
  for (const { exit, text } of rows) {
    // The error codes a row names are the ones in parentheses: (`UNAVAILABLE`, `TIMEOUT`).
    const named = [...text.matchAll(/\(([^)]*)\)/g)].flatMap(([, inner]) => [...inner!.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]));
    for (const code of named) {
      t.ok(isErrorCode(code), `${code} is an error code`);
      if (isErrorCode(code)) t.equal(exitCodeOf(code), exit, `${code} exits ${exit}`);
    }
  }
});
