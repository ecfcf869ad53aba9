// Which process wrote a log line, in pretty logs: under kv up several processes share one terminal. A daemon binds
// its server id (once known) and port to its logger, a coordinator its port; the name in parentheses becomes
// "daemon 7 :2012" or "coordinator :1982", and those bindings are not repeated under the line. JSON lines carry
// them as fields. A coordinator's `serverId` field is about a daemon, so it is shown as any other field.
type Line = { name?: unknown; serverId?: unknown; port?: unknown };

const isDaemon = (line: object) => (line as Line).name === 'daemon';

/** Leaves a field out of a pretty line: pino-pretty omits a key whose prettifier returns undefined (its types say string). */
const omitted = undefined as unknown as string;

/** pino-pretty's customPrettifiers. */
export const writerPrettifiers = {
  name: (name: unknown, _key: string, line: object) =>
    [name, isDaemon(line) ? (line as Line).serverId : undefined, (line as Line).port === undefined ? undefined : `:${(line as Line).port}`]
      .filter((part) => part !== undefined)
      .join(' '),
  serverId: (value: unknown, _key: string, line: object) => (isDaemon(line) ? omitted : JSON.stringify(value)),
  port: () => omitted,
};

/** The fields that say which process wrote a line, for `logger.setBindings`; each bound once, when known. */
export type WriterBindings = { serverId: string } | { port: number };
