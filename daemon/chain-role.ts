// What one daemon is in one partition's chain, by one config. Computed once per config for each replica
// (replica.ts), so a request only compares a kind. Pure, so every case is a unit test on plain config data.
import type { PartitionInfo } from '../shared/config.js';

/**
 * A daemon's place in a partition's extended chain (the chain, then the joining member):
 *   head    takes client writes, forwards to `successor`
 *   middle  takes batches from its predecessor, forwards to `successor` (a member `leaving` is a middle: it
 *           stays just before the new tail until it may go)
 *   tail    takes batches, serves reads, and forwards to the joining member, if any (`joiner`)
 *   sole    a one-member chain: head and tail at once
 *   joining receives the transfer from the chain's tail (`tail`) and every batch the tail commits after it
 *   none    holds nothing of the partition by this config
 */
export type Role =
  | { readonly kind: 'none' }
  | { readonly kind: 'joining'; readonly tail: string | undefined }
  | { readonly kind: 'head' | 'middle'; readonly successor: string }
  | { readonly kind: 'tail' | 'sole'; readonly joiner: string | undefined };

export const noRole: Role = { kind: 'none' };

export function roleOf(info: PartitionInfo | undefined, me: string): Role {
  if (!info) return noRole;
  if (info.joining?.server === me) return { kind: 'joining', tail: info.chain[info.chain.length - 1] };
  const at = info.chain.indexOf(me);
  if (at < 0) return noRole;
  const successor = info.chain[at + 1];
  if (successor !== undefined) return { kind: at === 0 ? 'head' : 'middle', successor };
  return { kind: at === 0 ? 'sole' : 'tail', joiner: info.joining?.server };
}

/** Clients' writes enter here. */
export const takesWrites = (role: Role): boolean => role.kind === 'head' || role.kind === 'sole';

/** Reads are answered here. */
export const servesReads = (role: Role): boolean => role.kind === 'tail' || role.kind === 'sole';

/** The joining member, if this daemon is the tail that must send it the partition. */
export const transferTarget = (role: Role): string | undefined =>
  role.kind === 'tail' || role.kind === 'sole' ? role.joiner : undefined;

/**
 * Where a batch committed here goes next: the following daemon of the extended chain, null at the end of it, or
 * 'left' when this daemon's copy of the batch no longer counts: it is out of the chain, or it is the joining
 * member now but took the batch in another role (`asJoining` false: as the head, say, before one config both
 * moved the partition away from it and made it join again). A joining member's data is replaced by the transfer
 * from the tail, and the tail only has the writes it forwarded to it as the joining member.
 */
export function successorFor(role: Role, asJoining: boolean): string | null | 'left' {
  switch (role.kind) {
    case 'none':
      return 'left';
    case 'joining':
      return asJoining ? null : 'left';
    case 'head':
    case 'middle':
      return role.successor;
    case 'tail':
    case 'sole':
      return role.joiner ?? null;
  }
}
