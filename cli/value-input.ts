// Where a writing command gets its JSON: the command line, or `--file FILE` (`-` for stdin) for values too big
// for an argument list (about 128 KiB on Linux). Input is read up to a bound, so `--file /dev/zero` ends.
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { KvError, badRequest } from '../shared/errors.js';
import { valueTextBytesMax } from '../shared/limits.js';

const why = (error: NodeJS.ErrnoException): string =>
  ({ ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'it is a directory' })[error.code ?? ''] ?? error.message;

async function readBounded(stream: Readable, name: string): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const chunk of stream) {
      bytes += (chunk as Buffer).length;
      if (bytes > valueTextBytesMax) {
        stream.destroy();
        throw badRequest(`${name} is over ${valueTextBytesMax} bytes, more than any value can be`);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    if (!(error instanceof KvError)) throw badRequest(`cannot read ${name}: ${why(error as NodeJS.ErrnoException)}`);
    throw error;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The JSON given as the positional argument or with --file; exactly one of them. */
export function valueText(argv: { value?: string; file?: string }): Promise<string> {
  if (argv.value !== undefined && argv.file !== undefined) {
    return Promise.reject(badRequest('give the value on the command line or with --file, not both'));
  }
  if (argv.value !== undefined) return Promise.resolve(argv.value);
  if (argv.file === undefined) return Promise.reject(badRequest('give the value as JSON, or --file FILE (--file - reads stdin)'));
  return argv.file === '-' ? readBounded(process.stdin, 'stdin') : readBounded(createReadStream(argv.file), `--file ${argv.file}`);
}
