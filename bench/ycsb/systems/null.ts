// The generator's ceiling: a "store" that is a Map inside each generator process and answers at once, no I/O at
// all. Driven by the same driver with the same generator count as the real systems, its ops/s is what the
// generators can do on their own on this machine; a system that comes near it is measured as much by the
// generators as by itself (report.ts warns then).
import type { ConnectInfo, ProcessRef, System, SystemClient } from '../system.js';

export class NullSystem implements System {
  readonly name = 'null';
  readonly label = 'null (a Map in each generator: the generator ceiling)';

  unavailable(): string | undefined {
    return undefined;
  }

  async start(): Promise<void> {}

  connectInfo(): ConnectInfo {
    return { kind: 'null' };
  }

  async stop(): Promise<void> {}

  processes(): ProcessRef[] {
    return [];
  }

  dataDirs(): Array<{ name: string; path: string }> {
    return [];
  }

  details(): string {
    return 'a Map in each generator process, answering at once (resolved promises, no I/O); each generator loads every key';
  }
}

export class NullClient implements SystemClient {
  readonly local = true;
  private readonly values = new Map<string, Uint8Array>();

  async put(key: string, value: Buffer): Promise<void> {
    this.values.set(key, value);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return this.values.get(key);
  }

  async close(): Promise<void> {
    this.values.clear();
  }
}
