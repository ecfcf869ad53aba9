// What the benchmark drives: a store the parent process starts on loopback (System) and stops afterwards, and
// the clients its generator processes read and write it through, one key at a time (SystemClient). The parent
// hands each generator the system's ConnectInfo, plain data sent over IPC, from which clients/connect.ts makes a
// client-only instance. One client instance per generator carries all of its concurrent requests (kv's Client
// pipelines them over its connections like ioredis with auto-pipelining; etcd3 multiplexes them over one
// HTTP/2 channel).
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface ProcessRef {
  name: string;
  pid: number;
}

/** How a generator process reaches a started system: one variant per kind of client. */
export type ConnectInfo =
  | { kind: 'kv'; coordinator: string; space: string; tls?: { cert: string; key: string; ca: string } }
  | { kind: 'redis'; port: number }
  | { kind: 'etcd'; url: string }
  | { kind: 'level'; dir: string }
  | { kind: 'null' };

export interface SystemClient {
  /**
   * True for a store inside the generator process itself (null, level): it sees only its own writes, so each
   * generator loads every key into its own, the others' share unmeasured.
   */
  readonly local: boolean;
  put(key: string, value: Buffer): Promise<void>;
  /** The value under key; undefined when there is none. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Disconnects (a local store: closes and keeps its files for the parent to remove). */
  close(): Promise<void>;
}

export interface System {
  /** The short name used on the command line, in the JSON and in charts: kv, kv-durable, redis-always, etcd, null, ... */
  readonly name: string;
  /** What it is, for tables: "kv (3 daemons, tolerate 0)". */
  readonly label: string;
  /** Why it cannot run here (e.g. "redis-server not installed"), or undefined when it can. */
  unavailable(): string | undefined;
  /** Starts the server(s); resolves when a request can be served. Every wait is bounded. */
  start(): Promise<void>;
  /** What a generator process needs to connect its own client, once started. */
  connectInfo(): ConnectInfo;
  /** Stops every process it started and removes its temp dir; safe to call more than once, and after a failed start. */
  stop(): Promise<void>;
  /** The server processes whose CPU a run is charged with (empty for a store inside the generators). */
  processes(): ProcessRef[];
  /** Server version and settings worth printing, once started. */
  details(): string;
  /** The directories its data is stored in (kv: one per daemon; empty for a store that keeps nothing on disk), once started. */
  dataDirs(): Array<{ name: string; path: string }>;
}

/** What a directory tree takes on disk (allocated blocks, like du) and its files' apparent size, in bytes; zeros when it is gone. */
export function diskUsage(dir: string): { bytes: number; apparentBytes: number } {
  let bytes = 0;
  let apparentBytes = 0;
  const walk = (path: string) => {
    let stat;
    try {
      stat = lstatSync(path);
    } catch {
      return; // removed meanwhile (LevelDB deletes files as it compacts)
    }
    bytes += stat.blocks * 512;
    if (stat.isFile()) apparentBytes += stat.size;
    if (!stat.isDirectory()) return;
    let names: string[] = [];
    try {
      names = readdirSync(path);
    } catch {
      return;
    }
    for (const name of names) walk(join(path, name));
  };
  walk(dir);
  return { bytes, apparentBytes };
}

/** The code of an error, for counting errors by kind: KvError's code, Node's error code, or the error's class name. */
export function errorCode(error: unknown): string {
  if (error && typeof error === 'object') {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    const name = (error as { name?: unknown }).name;
    if (typeof name === 'string' && name !== '' && name !== 'Error') return name;
  }
  return 'EXCEPTION';
}
