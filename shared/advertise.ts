// The address a daemon registers with the coordinator (and the one a coordinator gives as its own): the one
// clients and other daemons dial. It is where the daemon listens, unless that is no single address (a wildcard)
// or one other hosts cannot reach (loopback, with a coordinator elsewhere): then the operator names it with
// --advertise, and a daemon without it is refused at start rather than registering an address that sends every
// peer to itself.
import { badRequest } from './errors.js';
import { formatAddress, parseAddress } from './address.js';

const wildcards = new Set(['0.0.0.0', '::', '0:0:0:0:0:0:0:0']);

export const isLoopback = (host: string): boolean =>
  host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1' || /^::ffff:127\./i.test(host);

/**
 * Refuses a wildcard --listen without --advertise, and a wildcard --advertise: `who` dial one address, which
 * "every interface" is not. True when --advertise names the address (nothing more to check).
 */
function checkOneAddress(listenHost: string, advertise: string | undefined, process: string, who: string): boolean {
  if (advertise !== undefined) {
    const host = parseAddress(advertise, 0).host;
    if (wildcards.has(host)) throw badRequest(`--advertise ${advertise} is not one address: give this host's address or name`);
    return true;
  }
  if (wildcards.has(listenHost)) {
    throw badRequest(
      `--listen ${listenHost} takes connections on every interface, but ${who} need the one address that reaches this ${process}: add --advertise HOST (this host's address or name)`,
    );
  }
  return false;
}

/** Refuses a listen address / --advertise / coordinator combination that would register an unreachable address. */
export function checkAdvertisable(listenHost: string, advertise: string | undefined, coordinator: string): void {
  if (checkOneAddress(listenHost, advertise, 'daemon', 'clients and other daemons')) return;
  const coordinatorHost = parseAddress(coordinator, 0).host;
  if (isLoopback(listenHost) && !isLoopback(coordinatorHost)) {
    throw badRequest(
      `this daemon listens on ${listenHost}, which the coordinator at ${coordinator} and other hosts cannot reach: give --listen (or --advertise) this host's address`,
    );
  }
}

/**
 * The coordinator's address is what daemons and clients are given (`--coordinator`), what it logs and kv up
 * shows: on a wildcard --listen it must be named.
 */
export function checkCoordinatorAdvertisable(listenHost: string, advertise: string | undefined): void {
  checkOneAddress(listenHost, advertise, 'coordinator', 'daemons and clients');
}

/** What the daemon registers: `advertise` (its port defaulting to the bound one), else where it is bound. */
export function advertisedAddress(bound: string, advertise: string | undefined): string {
  if (advertise === undefined) return bound;
  const { port } = parseAddress(bound);
  return formatAddress(parseAddress(advertise, port));
}
