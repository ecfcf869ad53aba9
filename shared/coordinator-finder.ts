// Finding the coordinator that leads. Coordinators are replicated: any of them answers `leader`, one leads and
// the others answer NOT_LEADER to everything that matters. Clients, daemons and every kv command are given a list
// of them (`a:1982,b:1982`) and open their session with the one that leads: the last leader found first (it most
// likely still leads), then the list in order; a follower that names the leader sends us there next, even when
// that address is not in the list (a coordinator added later). While nobody leads (an election), the list is
// tried again with backoff until the deadline.
import { Connection, type FrameHandler } from './connection.js';
import { formatAddress, parseAddress } from './address.js';
import { KvError, asKvError, badRequest, type ErrorCode } from './errors.js';
import { Backoff } from './backoff.js';
import { leaderPassMsMin, reconnectDelayMsMax, reconnectDelayMsMin } from './limits.js';
import type { TlsSettings } from './tls.js';

/** The port of a coordinator written without one. */
export const coordinatorPortDefault = 1982;

/**
 * The coordinators of a list as written (`a:1982,b,[::1]:1983`, or several such strings), each as HOST:PORT
 * (`defaultPort` where none is given), in order, duplicates removed. An empty or malformed entry is a BAD_REQUEST
 * naming it.
 */
export function parseCoordinators(list: string | readonly string[], defaultPort = coordinatorPortDefault): string[] {
  const written = typeof list === 'string' ? list : list.join(',');
  const entries = written.split(',');
  const inList = entries.length > 1 ? ` in the coordinator list "${written}"` : '';
  const addresses = entries.map((entry, i) => {
    if (entry.trim() === '') {
      throw badRequest(`entry ${i + 1}${inList || ' of the coordinator list'} is empty; expected HOST:PORT[,HOST:PORT...]`);
    }
    try {
      return formatAddress(parseAddress(entry, defaultPort));
    } catch (error) {
      throw badRequest(`${asKvError(error).message}${inList}`);
    }
  });
  return [...new Set(addresses)];
}

export interface FindOptions {
  /** How long finding the leader may take, elections included. */
  timeoutMs: number;
  tls?: TlsSettings | undefined;
  /** The leader found last time: asked first. */
  preferred?: string | undefined;
  /** The backoff's random source (tests pin it). */
  random?: () => number;
}

/** What one pass over the coordinators found: the leader's connection, or (in `failures`) why each was not it. */
interface Round {
  leader: Connection | undefined;
  /** Some coordinator answered: leadership is changing hands, and another pass may find the new leader. */
  answered: boolean;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A connection to the coordinator that leads, its frames (other than replies) going to `onMessage`; fails after
 * `timeoutMs` with one UNAVAILABLE line naming every address and why it is not the leader (UNAUTHENTICATED when
 * every one refused this process's credential or showed a certificate not to be trusted: trying again cannot help).
 */
export async function openLeader(addresses: readonly string[], onMessage: FrameHandler, options: FindOptions): Promise<Connection> {
  if (addresses.length === 0) throw badRequest('no coordinator given; expected HOST:PORT[,HOST:PORT...]');
  const deadline = performance.now() + options.timeoutMs;
  const backoff = new Backoff(reconnectDelayMsMin, reconnectDelayMsMax, options.random);
  let preferred = options.preferred;
  // Why each address is not the leader, by the latest pass that got an answer or an error from it.
  const failures = new Map<string, KvError>();
  for (;;) {
    const round = await findOnce(addresses, onMessage, options.tls, preferred, deadline, failures);
    if (round.leader) return round.leader;
    const remaining = deadline - performance.now();
    if (!round.answered || remaining < leaderPassMsMin) throw notFound(failures);
    preferred = undefined; // it did not lead a moment ago
    await pause(backoff.next(remaining - leaderPassMsMin));
  }
}

/**
 * One pass: each candidate in turn, with a fair share of the time left (a coordinator that does not answer must
 * not starve the ones after it), the one a follower names inserted next.
 */
async function findOnce(
  addresses: readonly string[],
  onMessage: FrameHandler,
  tls: TlsSettings | undefined,
  preferred: string | undefined,
  deadline: number,
  failures: Map<string, KvError>,
): Promise<Round> {
  const candidates = [...new Set([...(preferred ? [preferred] : []), ...addresses])];
  const round: Round = { leader: undefined, answered: false };
  for (let i = 0; i < candidates.length; i++) {
    const address = candidates[i]!;
    const shareMs = Math.floor((deadline - performance.now()) / (candidates.length - i));
    if (shareMs <= 0) {
      // What an earlier pass found says more than this one's running out of time.
      if (!failures.has(address)) failures.set(address, new KvError('UNAVAILABLE', `${address} was not tried: no time left`));
      continue;
    }
    const asked = await ask(address, onMessage, tls, shareMs);
    if (asked instanceof Connection) {
      round.leader = asked;
      return round;
    }
    if (asked instanceof KvError) {
      failures.set(address, asked);
      continue;
    }
    round.answered = true;
    const named = asked.leader === null ? undefined : normalize(asked.leader);
    if (named === undefined || named === address) {
      failures.set(address, new KvError('UNAVAILABLE', `${address} does not lead and knows no leader (an election under way?)`));
      continue;
    }
    failures.set(address, new KvError('UNAVAILABLE', `${address} does not lead; it names ${named} as the leader`));
    // Next, unless already tried in this pass (then the pass goes on: the one named did not lead just now).
    const at = candidates.indexOf(named);
    if (at < 0) candidates.splice(i + 1, 0, named);
    else if (at > i + 1) candidates.splice(i + 1, 0, ...candidates.splice(at, 1));
  }
  return round;
}

/** Opens a connection to `address` and asks it who leads: the connection when it does, else what it said or why not. */
async function ask(address: string, onMessage: FrameHandler, tls: TlsSettings | undefined, timeoutMs: number): Promise<Connection | KvError | { leader: string | null }> {
  const started = performance.now();
  let connection: Connection;
  try {
    connection = await Connection.open(address, onMessage, timeoutMs, '/', tls, 'coordinator');
  } catch (error) {
    return asKvError(error);
  }
  try {
    const info = await connection.request({ t: 'leader' }, Math.max(1, timeoutMs - (performance.now() - started)));
    if (info.leading) return connection;
    connection.close();
    return { leader: info.leader };
  } catch (error) {
    connection.close();
    return asKvError(error);
  }
}

/** A leader's address as a follower gave it, written as the list's are; undefined when it is not one. */
function normalize(address: string): string | undefined {
  try {
    return formatAddress(parseAddress(address, coordinatorPortDefault));
  } catch {
    return undefined;
  }
}

/** One line naming every address and why it is not the leader. */
function notFound(failures: Map<string, KvError>): KvError {
  const reasons = [...failures.values()];
  const code: ErrorCode = reasons.every((e) => e.code === 'UNAUTHENTICATED') ? 'UNAUTHENTICATED' : 'UNAVAILABLE';
  const said = reasons.map((e) => e.message).join('; ');
  return new KvError(code, reasons.length === 1 ? said : `no leading coordinator among ${failures.size}: ${said}`);
}
