// The package's public API, what `import … from 'kv'` gives: the client, the error a program switches on by its
// code, and the types of what the client takes and returns. Everything else in dist/ is internal and may change.
export { Client, type ClientOptions } from './client.js';
export { KvError, errorCodes, isErrorCode, type ErrorCode } from './errors.js';
export { loadTls, type TlsFiles, type TlsSettings } from './tls.js';
export type { Attrs, AttrValue, BackupLock, BackupResult, ClusterStatus } from './protocol.js';
export type { ClusterConfig, PartitionInfo, ServerInfo, ServerState, SpaceInfo } from './config.js';
