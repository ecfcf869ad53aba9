// The address a daemon registers with the coordinator: the one clients and other daemons dial. It is where the
// daemon listens, unless that is no single address (a wildcard) or one other hosts cannot reach (loopback, with a
// coordinator elsewhere): then the operator names it with --advertise, and a daemon without it is refused at start
// rather than registering an address that sends every peer to itself.
import { badRequest } from './errors.js';
import { formatAddress, parseAddress } from './address.js';

const wildcards = new Set(['0.0.0.0', '::', '0:0:0:0:0:0:0:0']);

export const isLoopback = (host: string): boolean =>
  host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1' || /^::ffff:127\./i.test(host);

/** Refuses a listen address / --advertise / coordinator combination that would register an unreachable address. */
export function checkAdvertisable(listenHost: string, advertise: string | undefined, coordinator: string): void {
  if (advertise !== undefined) {
    const host = parseAddress(advertise, 0).host;
    if (wildcards.has(host)) throw badRequest(`--advertise ${advertise} is not one address: give this host's address or name`);
    return;
  }
  if (wildcards.has(listenHost)) {
    throw badRequest(
      `--listen ${listenHost} takes connections on every interface, but clients and other daemons need the one address that reaches this daemon: add --advertise HOST (this host's address or name)`,
    );
  }
  const coordinatorHost = parseAddress(coordinator, 0).host;
  if (isLoopback(listenHost) && !isLoopback(coordinatorHost)) {
    throw badRequest(
      `this daemon listens on ${listenHost}, which the coordinator at ${coordinator} and other hosts cannot reach: give --listen (or --advertise) this host's address`,
    );
  }
}

/** What the daemon registers: `advertise` (its port defaulting to the bound one), else where it is bound. */
export function advertisedAddress(bound: string, advertise: string | undefined): string {
  if (advertise === undefined) return bound;
  const { port } = parseAddress(bound);
  return formatAddress(parseAddress(advertise, port));
}
