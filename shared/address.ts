// host:port strings, as written on command lines and stored in the config.
import { badRequest } from './errors.js';

export interface Address {
  host: string;
  port: number;
}

export function parseAddress(text: string, defaultPort?: number): Address {
  const match = /^(?:\[([0-9A-Za-z:.%]+)\]|([A-Za-z0-9.-]+))(?::(\d+))?$/.exec(text.trim());
  const host = match?.[1] ?? match?.[2];
  const port = match?.[3] !== undefined ? Number(match[3]) : defaultPort;
  if (!host || port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw badRequest(`"${text}" is not an address; expected HOST:PORT, e.g. 127.0.0.1:1982`);
  }
  return { host, port };
}

export const formatAddress = ({ host, port }: Address): string =>
  host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;

export const wsUrl = (address: string, secure = false): string => `${secure ? 'wss' : 'ws'}://${address}`;
