// Every bound in kv, in one place, with its unit last. Call sites name these; they never repeat the numbers.

/** Largest key, in UTF-8 bytes. */
export const keyBytesMax = 64 * 1024;
/** Default largest stored value (an encoded attribute map), in bytes; daemons take `--value-bytes-max`. */
export const valueBytesMaxDefault = 8 * 1024 * 1024;
/** Largest WebSocket message any kv process accepts; bigger ones close the connection (ws code 1009). */
export const frameBytesMax = 32 * 1024 * 1024;
/** Largest number of attributes in one value. */
export const attributesMax = 1024;
/** Largest attribute name, in UTF-8 bytes. */
export const attributeNameBytesMax = 1024;
/** Largest space name, in characters. */
export const spaceNameLengthMax = 128;
/** Most partitions one space may have. */
export const partitionsMax = 4096;
/** Default number of partitions of a new space. */
export const partitionsDefault = 16;

/** Default time a client operation may take, retries included. */
export const requestTimeoutMsDefault = 10_000;
/**
 * Longest a client operation may take, retries included: a write is never sent again later than this after it was
 * first sent, which is what lets daemons forget its completion record (`sessionIdleMsMax`).
 */
export const requestTimeoutMsMax = 5 * 60_000;
/**
 * A client session's completion records in a partition are dropped once the session has not written there for
 * this long. Twice `requestTimeoutMsMax`: a margin for the wall clocks of the daemons a record moves between.
 */
export const sessionIdleMsMax = 2 * requestTimeoutMsMax;
/** How often a partition's head looks for sessions idle past `sessionIdleMsMax` (while it takes writes). */
export const sessionSweepIntervalMs = 10_000;
/**
 * Most sequence numbers a client session may have between the lowest write it still awaits and its newest; a
 * write outside waits in the client. Bounds the completion records one session keeps in any partition.
 */
export const writeWindowMax = 100_000;
/**
 * Most completion records of earlier writes a stored value keeps with it (stored-value.ts): about 20 bytes each. A
 * hot key overwritten by many sessions at once spills the older ones to the partition's record range.
 */
export const keyRecordsMax = 8;
/** Most client sessions whose lowest awaited write a partition's head remembers (forgetting one is safe, and costs records). */
export const awaitedSessionsMax = 10_000;
/** Interval between a daemon's read-lease requests, which are its heartbeats. */
export const heartbeatIntervalMsDefault = 1_000;
/** A daemon the coordinator has not heard from for this long is marked not available. */
export const heartbeatTimeoutMsDefault = 3_000;
/**
 * A daemon's read lease runs out this fraction of the heartbeat timeout earlier than the timeout itself: the
 * coordinator's and the daemon's monotonic clocks may run at different rates (NTP keeps them within 0.05%; this
 * allows 2.5% each way).
 */
export const readLeaseClockRateMargin = 0.05;
/** And this much earlier again: scheduling slack between a lease check and the read it admits. */
export const readLeaseMarginMs = 100;
/** First and largest wait between reconnect attempts (daemon → coordinator, client → anything). */
export const reconnectDelayMsMin = 50;
export const reconnectDelayMsMax = 2_000;
/**
 * While nobody leads, another pass over the coordinators starts only with at least this much time left: one with
 * less would only replace what the last pass learnt (a follower that knows no leader) with "no answer in time".
 */
export const leaderPassMsMin = 200;
/** How long a graceful shutdown may wait for in-flight work before exiting anyway. */
export const shutdownGraceMs = 10_000;

/** Most writes the daemon applies to LevelDB in one batch. */
export const writeBatchOpsMax = 1_000;
/** Most entries and bytes in one page of a scan. */
export const scanPageEntriesMax = 1_000;
export const scanPageBytesMax = 4 * 1024 * 1024;
/** Most requests one client keeps waiting for on one connection; more wait in the client. */
export const inflightRequestsMax = 100_000;

/** Tries at capturing a snapshot before giving up (each retry means a compaction changed the file set). */
export const captureAttemptsMax = 20;
/** Default lease of a freeze: a daemon thaws by itself this long after it froze, whatever happens. */
export const freezeLeaseMsDefault = 5_000;
/** The coordinator thaws a backup attempt that has run this close to the lease, so no daemon thaws first. */
export const freezeLeaseMarginMs = 1_000;
/** Most writes a frozen daemon holds; more are refused with UNAVAILABLE. */
export const heldWritesMax = 100_000;
/**
 * Longest one backup attempt waits for every daemon to quiesce before it thaws the cluster and backs out. A quiesce
 * takes milliseconds (the whole freeze is 14 ms at 100 MB and 30 ms at 1 GB with writers running, bench/RESULTS.md);
 * one that takes longer is waiting on something that will not pass soon (a daemon cut off from its successor, or
 * paused), and all that time every write of the cluster is held, the unaffected ones too.
 */
export const backupQuiesceMsMax = 1_000;
/**
 * Default for the most time the cluster may spend frozen across all attempts of one backup (`--frozen-ms-max`).
 * Three attempts that each wait out `backupQuiesceMsMax`: a slow moment gets a second and third chance, while a
 * fault that outlasts them costs the cluster less than one attempt did before this bound (a whole lease, 4 s, up to
 * 12 times). Backups that freeze for milliseconds never come near it.
 */
export const backupFrozenMsMaxDefault = 3_000;
/**
 * Kept back from the frozen budget for the thaw itself (persisting and publishing a config): an attempt's waits end
 * this long before the budget does, so the freezes of a backup add up to at most the budget.
 */
export const backupThawReserveMs = 100;
/** After an attempt that held the cluster frozen F ms, the next waits at least this many times F, unfrozen. */
export const backupUnfrozenPerFrozenMin = 4;
/** First and largest wait between two attempts of a backup, apart from `backupUnfrozenPerFrozenMin`. */
export const backupRetryWaitMsMin = 100;
export const backupRetryWaitMsMax = 2_000;
/** How long the coordinator waits for a daemon to list or release its snapshots. */
export const snapshotReleaseMsMax = 10_000;
/** Most snapshot releases the coordinator keeps owing one daemon that is gone (each failed attempt owes one). */
export const snapshotReleasesOwedMax = 256;
/** How long a backup keeps retrying freezes whose config changed, before failing. */
export const backupDeadlineMsDefault = 60_000;
/** How long a daemon may take to link its tables before a backup's freeze. */
export const snapshotPrepareMsMax = 60_000;
/** Most threads one process hashes files on (snapshot seals, backup checks); fewer on a machine with fewer cores. */
export const hashThreadsMax = 4;
/** Bytes a hashing thread reads at a time. */
export const hashChunkBytes = 1024 * 1024;
/** How long a daemon may take to checksum and fsync its snapshot after the thaw. */
export const snapshotSealMsMax = 30 * 60_000;
/** Wait before a failed state transfer is tried again. */
export const transferRetryDelayMs = 1_000;
/** How long a backup lock lasts unless its holder renews it. */
export const backupLockMsDefault = 30_000;
/**
 * Largest JSON text `kv put --file` (and the other writing commands) reads: a value as big as a message, with its
 * bytes in base64 (a third bigger) and room for the JSON around them. Bigger input is refused before it is parsed.
 */
export const valueTextBytesMax = 2 * frameBytesMax;

/**
 * Seconds a backup's rsync may go without moving any data before it gives up (rsync --timeout): a daemon host cut
 * off mid-copy fails the backup, and frees its lock, instead of hanging for TCP's minutes.
 */
export const rsyncIoTimeoutSeconds = 30;

/**
 * How often a client pings its coordinator session, and how long the session may stay silent (no pong, no push)
 * before the client drops it and subscribes anew: a coordinator host that lost power sends no FIN.
 */
export const coordinatorPingIntervalMs = 1_000;
export const coordinatorSilenceMsMax = 10_000;

/**
 * How often a daemon pings the daemons it replicates or transfers to (and a client the daemons it uses), and how long
 * such a connection may stay silent (no pong, no answer) before it is dropped: a peer whose host died, or a cut
 * between the two hosts, sends no FIN. Shorter than the coordinator's heartbeat timeout, so that a cut between two
 * daemons is reported (below) about as soon as a dead daemon would be noticed.
 */
export const peerPingIntervalMs = 500;
export const peerSilenceMsMax = 2_000;
/** How long opening a connection to another daemon may take before it counts as unreachable. */
export const peerConnectTimeoutMs = 2_000;
/**
 * A successor that replication (or a transfer) has failed to reach for this long is reported to the coordinator
 * as unreachable, and probed this often until it answers again (each failed probe renews the report).
 */
export const peerUnreachableMs = peerSilenceMsMax;
export const peerProbeIntervalMs = 1_000;
/** The coordinator forgets a daemon's report that another is unreachable when it has not been renewed for this long. */
export const cutReportMsMax = 10_000;
/**
 * TCP keep-alive on every kv connection: the kernel probes an idle socket after this long, so a connection to a host
 * that vanished is closed even where no heartbeat of ours runs. The pings above notice sooner; this is the floor.
 */
export const tcpKeepAliveDelayMs = 10_000;

/** How long a cluster CA made by `kv certs init` is valid, and a certificate `kv certs issue` makes (825: what browsers accept). */
export const caCertificateDays = 3650;
export const certificateDays = 825;

/** How long a token made by `kv certs token` is valid unless told, and at most. */
export const tokenTtlHoursDefault = 24;
export const tokenTtlHoursMax = 24 * 366;
/** Longest token a server reads (a statement of a few fields and a signature: far below this). */
export const tokenBytesMax = 4096;

/** The coordinators' etcd lease on the leader key (kv coordinator --etcd-lease-ttl-seconds): a dead leader's successor leads this long after its last keep-alive. */
export const leaderLeaseTtlSecondsDefault = 5;
/**
 * A leader stops acting this long before its lease could have run out in etcd (counted from the send time of its
 * last good keep-alive, on the monotonic clock, less readLeaseClockRateMargin), so a successor never acts while it
 * still does.
 */
export const leaderStepDownMarginMs = 250;
/** The longest one request to etcd may take; keep-alives go out every TTL/3, each bounded by this too. */
export const etcdRequestTimeoutMs = 2_000;
